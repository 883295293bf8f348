"""The project's own exception types: the CLI prints them as one line on stderr and exits with their code."""


class UserError(Exception):
    """Bad input from the user (missing file, malformed record, unknown task, bad config): exit code 2."""

    exit_code = 2


class BudgetStop(UserError):
    """The teacher stopped at its budget: not a mistake, not a crash; everything bought is stored."""

    exit_code = 3


def first_error(exc) -> str:
    """A pydantic ValidationError's first error as one line: `key.path: message` ("unknown key" for a key the
    model forbids), or the message alone where it concerns the whole value."""
    first = exc.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"].removeprefix("Value error, ")
    return f"{key}: {message}" if key else message
