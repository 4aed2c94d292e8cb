# Test double for the flash seam (storage/flashio.py), run inside the MicroPython VM by the
# power-cut tests. It lives here, not in the firmware: no device ever cuts its own power, and
# every module in firmware/ ships in a device image.
from flashio import PlainFlash


class BrownoutFlash(PlainFlash):
    """Test double: the power fails during operation number `cut_at` (1-based).

    If that operation is a write, only the first `keep` bytes reach the file (a torn
    write; keep=None keeps half); a rename or remove does not happen. Every later
    operation fails too, as on a board that has lost power.
    """

    def __init__(self, cut_at, keep=None):
        PlainFlash.__init__(self)
        self.cut_at = cut_at
        self.keep = keep
        self.cut = False

    def _tick(self):
        if self.cut:
            raise OSError(5, "brown-out: flash is off")
        if self.writes + 1 == self.cut_at:
            self.cut = True
            return True
        return False

    def write(self, f, data):
        if self._tick():
            keep = len(data) // 2 if self.keep is None else min(self.keep, len(data))
            if keep:
                f.write(data[:keep])
            f.flush()
            raise OSError(5, "brown-out during write")
        PlainFlash.write(self, f, data)

    def rename(self, src, dst):
        if self._tick():
            raise OSError(5, "brown-out before rename")
        PlainFlash.rename(self, src, dst)

    def remove(self, path):
        if self._tick():
            raise OSError(5, "brown-out before remove")
        PlainFlash.remove(self, path)
