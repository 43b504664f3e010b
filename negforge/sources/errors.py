"""The one error type of the reading layer."""


class InputError(ValueError):
    """Input that cannot be used at all; the message names the file (and line, column, key) and what is wrong."""
