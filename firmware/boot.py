# Runs first at every boot. Part of the board image, never updated over the air: it picks the
# image to run (SPEC 9.4) -- the active OTA slot, verified, or the board's own -- and must
# never stop the board from starting, so any failure here falls back to the board's image.
import sys


def _ota():
    try:
        import otaboot
    except ImportError:
        return              # a build without OTA
    try:
        otaboot.boot()
    finally:
        # The image about to run imports its own copies of these.
        for name in otaboot.MODULES:
            if name in sys.modules:
                del sys.modules[name]


try:
    _ota()
except Exception as exc:  # noqa: B902 - the board image still runs
    sys.print_exception(exc)
del _ota
