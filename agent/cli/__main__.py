"""``python -m agent.cli`` runs the aar command line."""

from agent.cli import main

if __name__ == "__main__":
    main()
