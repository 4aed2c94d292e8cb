# Device entry point (a real board runs it after boot.py; so does the emulator's launcher).
# The link carries frames and the REPL: 0x03 is escaped inside frames, so the runtime reads
# the link with MicroPython's Ctrl-C handling off and handles the byte pair 0D 03 itself
# (SPEC section 2): a factory-state device, or one in maintenance, drops to the REPL (how
# mpremote takes over); a provisioned one ignores it (SPEC 12).
#
# A port re-arms Ctrl-C for each script it runs, so it goes off again here first thing, the
# way boot.py does it: a pending interrupt is raised only at a jump, and the `if` raises one
# that came before kbd_intr(-1) inside the try.
try:
    import micropython
    micropython.kbd_intr(-1)
    if micropython:
        pass
except BaseException:  # noqa: B902 - Ctrl-C included, on purpose
    pass

import hal  # noqa: E402 - after Ctrl-C is off
import runtime  # noqa: E402

try:
    runtime.main(hal)       # returns only where the REPL may be entered
finally:
    micropython.kbd_intr(3)
