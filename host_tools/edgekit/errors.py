"""One user-facing error family. Every message names what was wrong and what to do."""


class EdgekitError(Exception):
    """An error the CLI prints as one line (no traceback) and exits with `exit_code`."""
    exit_code = 2


class ProtocolError(EdgekitError):
    """A peer sent something invalid, or answered with an ERROR message."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


class LinkError(EdgekitError):
    """The link (serial port, socket) failed or timed out."""
    exit_code = 3
