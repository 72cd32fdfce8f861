"""The one exception type that means "the user asked for something we cannot do"."""


class UserError(Exception):
    """Bad input: the CLI prints the message as one line and exits with status 2.

    The message says what was wrong and how to fix it.
    """
