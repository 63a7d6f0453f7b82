"""Errors the harness raises with a one-line, actionable message."""


class HarnessError(Exception):
    """A user-facing error: its message is one line that says what to do."""


class UnknownTaskError(HarnessError):
    pass


class AssetMissingError(HarnessError):
    pass


class BudgetExhaustedError(HarnessError):
    pass
