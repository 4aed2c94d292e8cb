# Device entry point (a real board runs it after boot.py; so does the emulator's launcher).
# The link carries frames and the REPL: 0x03 is escaped inside frames, so the runtime reads
# the link with MicroPython's Ctrl-C handling off and raises KeyboardInterrupt itself on the
# byte pair 0D 03 (SPEC section 2) -- that is how mpremote takes over a running device.
import micropython

import hal
import runtime

micropython.kbd_intr(-1)
try:
    runtime.main(hal)
finally:
    micropython.kbd_intr(3)
