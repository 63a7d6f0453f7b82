"""The researcher: proposers, the research loop, budgets, and the command line."""
