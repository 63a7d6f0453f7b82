"""Errors the harness raises with a one-line, actionable message."""


class HarnessError(Exception):
    """A user-facing error: its message is one line that says what to do."""


class UnknownNameError(HarnessError):
    """A name no registry knows (task, encoder, isolation, executor, proposer)."""


class UnknownTaskError(UnknownNameError):
    """A task that is neither registered, nor a task directory, nor an ``hf:`` dataset."""


class AssetMissingError(HarnessError):
    pass


class BudgetExhaustedError(HarnessError):
    pass
