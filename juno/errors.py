"""Errors a user can cause: shown as one line, never as a traceback."""


class JunoError(Exception):
    """A problem with the user's input, files, models or devices.

    The CLI prints ``str(error)`` on one line and exits non-zero; anything else
    that escapes is a bug and keeps its traceback.
    """
