"""The one exception type for user mistakes: the CLI prints it as one line and exits with code 2."""


class UserError(Exception):
    """Bad input from the user (missing file, malformed record, unknown task, bad config)."""
