"""The VM's UART output as the host should see it: REPL mode tracking and the raw-REPL
soft-reboot dance.

After Ctrl-D in the raw REPL the unix VM exits; a real port instead prints "soft reboot",
runs boot.py and comes back with "raw REPL; CTRL-B to exit". The new VM prints a marker
(boards/emu_launch.py) where main.py would have run; from there this filter sends Ctrl-A to
the VM and hides its friendly banner up to the raw prompt, so mpremote sees a port.
"""
RAW_MARK = b"raw REPL; CTRL-B to exit\r\n"
FRIENDLY_MARK = b'Type "help()" for more information.'
SENTINEL = b"\x1b_edgekit-raw-repl\x1b\\"       # printed by boards/emu_launch.py


def _suffix_prefix(buf, mark):
    """Length of the longest suffix of `buf` that is a proper prefix of `mark`."""
    for k in range(min(len(mark) - 1, len(buf)), 0, -1):
        if buf.endswith(mark[:k]):
            return k
    return 0


class ReplFilter:
    def __init__(self):
        self.mode = "none"          # the REPL this VM announced: "none" | "friendly" | "raw"
        self._phase = "forward"     # "forward" | "await_mark" (raw reboot) | "swallow"
        self._held = b""
        self._tail = b""

    def reboot(self, raw):
        """A new VM starts; `raw`: it was a raw-REPL soft reboot.

        The REPL the old VM announced dies with it: a board reset out of a raw REPL session
        (the bench's factory reset ends one by a power cycle) runs its firmware, and a VM
        that later ends by itself must soft-reboot into main.py, not into that raw REPL
        (found on the serial tray: a provisioned board came back silent in a raw REPL)."""
        self._phase = "await_mark" if raw else "forward"
        self._held = b""
        self._tail = b""
        self.mode = "none"

    def feed(self, data, enter_raw):
        """Filter VM output; calls `enter_raw()` when the VM must be sent Ctrl-A."""
        buf = self._held + data
        self._held = b""
        out = bytearray()
        while buf:
            if self._phase == "forward":
                out += buf
                break
            if self._phase == "await_mark":
                i = buf.find(SENTINEL)
                if i >= 0:
                    out += buf[:i]
                    buf = buf[i + len(SENTINEL):]
                    self._phase = "swallow"
                    enter_raw()
                    continue
                keep = _suffix_prefix(buf, SENTINEL)
                out += buf[:len(buf) - keep]
                self._held = buf[len(buf) - keep:]
                break
            i = buf.find(RAW_MARK)      # swallow the unix banner until the raw prompt
            if i >= 0:
                buf = buf[i:]
                self._phase = "forward"
                continue
            self._held = buf[-(len(RAW_MARK) - 1):]
            break
        if out:
            seen = self._tail + out
            r, f = seen.rfind(RAW_MARK), seen.rfind(FRIENDLY_MARK)
            if r > f:
                self.mode = "raw"
            elif f > r:
                self.mode = "friendly"
            self._tail = bytes(seen[-64:])
        return bytes(out)
