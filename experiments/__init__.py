"""The experiment history: every attempt a git commit in a "lab" repository.

``schemas`` holds the persisted models, ``store.LabStore`` writes and reads the lab, ``index``
keeps a SQLite query index derived from git, ``replay`` reruns recorded attempts and ``report``
renders a session as Markdown or HTML.
"""
