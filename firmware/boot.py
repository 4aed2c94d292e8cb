# Runs first at every boot. Part of the board image, never updated over the air: it picks the
# image to run (SPEC 9.4) -- the active OTA slot, verified, or the board's own -- and must
# never stop the board from starting, so any failure here falls back to the board's image.
#
# Ctrl-C goes off before anything else (SPEC 12): on a port, boot.py ending in an uncaught
# KeyboardInterrupt skips main.py and leaves the REPL to whoever sent it. A pending interrupt
# is raised only at a jump, so the `if` below raises one that came before kbd_intr(-1)
# inside the try, and nothing after it can be interrupted.
try:
    import micropython
    micropython.kbd_intr(-1)
    if micropython:
        pass
except BaseException:  # noqa: B902 - Ctrl-C included, on purpose
    pass

import sys  # noqa: E402 - after Ctrl-C is off


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


def _maintenance():
    # A raw-REPL soft reboot inside a maintenance session (mpremote's connect) runs only
    # this file: re-arm the session's deadline, whose timer the soft reboot stopped.
    try:
        import hal
        import maintenance
        import store
    except ImportError:
        return
    try:
        maintenance.rearm(hal, store.Store(hal.storage_root().rstrip("/") + "/ek"))
    finally:
        for name in ("maintenance", "store", "agent", "envelope"):
            if name in sys.modules:
                del sys.modules[name]


for _step in (_ota, _maintenance):
    try:
        _step()
    except Exception as exc:  # noqa: B902 - the board image still runs
        sys.print_exception(exc)
del _ota, _maintenance, _step
