"""The project's own exception types: the CLI prints them as one line on stderr and exits with their code."""


class UserError(Exception):
    """Bad input from the user (missing file, malformed record, unknown task, bad config): exit code 2."""

    exit_code = 2


class BudgetStop(UserError):
    """The teacher stopped at its budget: not a mistake, not a crash; everything bought is stored."""

    exit_code = 3
