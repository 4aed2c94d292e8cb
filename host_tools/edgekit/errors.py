"""One user-facing error family. Every message names what was wrong and what to do."""


class EdgekitError(Exception):
    """An error the CLI prints as one line (no traceback) and exits with `exit_code`;
    under --json as one object on stderr whose "error" is `kind` (stable names)."""
    exit_code = 2
    kind = "invalid_input"      # a file, option or value the user can fix


class ProtocolError(EdgekitError):
    """A peer sent something invalid, or answered with an ERROR message."""
    kind = "protocol"

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


class LinkError(EdgekitError):
    """The link (serial port, socket) failed or timed out."""
    exit_code = 3
    kind = "link"


class StoreUnavailable(EdgekitError):
    """The registry's database could not be reached or written (a server restart, a full
    disk, a lock held too long): nothing was changed, and trying again later is right. The
    CLI reports it as any EdgekitError; the fleet service tells it from a malformed message
    (fleet/ingest.py: not acknowledged, the device sends it again)."""
