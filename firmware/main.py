# Placeholder app loop (the firmware core replaces it): keeps the board alive, sleeping
# through the HAL, answers nothing, and drops to the REPL on the byte pair 0D 03 (SPEC
# section 2) so mpremote can take over. Bytes are read one at a time so whatever follows
# the interrupt (mpremote's "\r\x01") stays in the link for the REPL.
import micropython

import hal

micropython.kbd_intr(-1)    # 0x03 is data on this link; only 0D 03 interrupts
_one = bytearray(1)
_prev = 0
try:
    while True:
        if hal.wait(1000):
            while hal.link.readinto(_one):
                if _prev == 0x0D and _one[0] == 0x03:
                    raise KeyboardInterrupt
                _prev = _one[0]
finally:
    micropython.kbd_intr(3)
