# The flash-write seam: every persistent write of the storage modules goes through a `flash`
# object so the board emulator can count writes and cut the power after N of them.
#
# Contract (the emulator HAL implements the same four members as `hal.flash`):
#   flash.write(f, data)     write bytes to an open file object; returns nothing
#   flash.rename(src, dst)   atomic replace of dst (littlefs and POSIX rename both are)
#   flash.remove(path)
#   flash.writes             number of operations so far (write, rename and remove each
#                            count one: on littlefs each is at least one metadata commit)
import os


class PlainFlash:
    """Writes straight to the filesystem and counts operations and bytes."""

    def __init__(self):
        self.writes = 0
        self.bytes = 0

    def write(self, f, data):
        self.writes += 1
        n = f.write(data)
        # A short write (flash full) must not pass as durable: the caller would report a
        # record saved that is not there.
        if n is not None and n != len(data):
            raise OSError(28, "short write: flash full? free space or lower max_bytes")
        self.bytes += len(data)

    def rename(self, src, dst):
        self.writes += 1
        os.rename(src, dst)

    def remove(self, path):
        self.writes += 1
        os.remove(path)


_default = None


def get():
    """The board's flash seam: `hal.flash` when a HAL provides one, else a PlainFlash."""
    global _default
    try:
        import hal
        flash = getattr(hal, "flash", None)
        if flash is not None:
            return flash
    except ImportError:
        pass
    if _default is None:
        _default = PlainFlash()
    return _default


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def size(path):
    """File size in bytes, or -1 when the file is missing."""
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


def makedirs(path):
    """mkdir -p (MicroPython's os has no makedirs)."""
    parts = path.split("/")
    cur = "/" if path.startswith("/") else ""
    for part in parts:
        if not part:
            continue
        cur = cur + part if cur.endswith("/") or not cur else cur + "/" + part
        if not exists(cur):
            os.mkdir(cur)
