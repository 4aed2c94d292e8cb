# Moves bytes between the HAL link (UART/USB) and the agent: frames in, bodies to the agent,
# answers framed back. Rate-limits answers to broken candidates (SPEC 2), so line noise or
# REPL text cannot make the device flood the link.
import struct

import catalog as C
import framing

# Read chunk, and the frame writer's staging (one COBS block escaped: 2 + 2 * 254 bytes):
# answers are written only after the decoder has taken the whole chunk, so one buffer
# serves both.
_CHUNK = 512
_STAGING = 2 + 2 * 254


class Link:
    def __init__(self, hal, agent, max_frame):
        self.hal = hal
        self.port = hal.link
        self.agent = agent
        self.decoder = framing.FrameDecoder(max_frame)
        self._buf = bytearray(_CHUNK)
        self._mv = memoryview(self._buf)
        self._last_complaint = None
        self._writer = FrameWriter(self.port.write, self._buf)
        self.sent = 0
        # Called on the interrupt pair 0D 03: raises KeyboardInterrupt where the REPL may be
        # entered (maintenance.Gate), returns otherwise. Until the runtime sets it, the pair
        # is noise: nothing reaches a REPL by default.
        self.on_interrupt = _ignore
        # The runtime hands in its scheduler's uptime (seconds, never wraps).
        self.uptime_s = self._ticks_s

    def poll(self):
        """Handle everything the link has now; the interrupt pair goes to on_interrupt."""
        port = self.port
        while port.any():
            n = port.readinto(self._buf)
            if not n:
                break
            for result in self.decoder.feed(self._mv[:n]):
                if isinstance(result, bytes):
                    for answer in self.agent.handle(result):
                        self.send(answer)
                    then = self.agent.after_reply
                    if then is not None:
                        self.agent.after_reply = None
                        then()
                elif result is framing.INTERRUPT:
                    self.on_interrupt()
                else:
                    self._complain(result)

    def _complain(self, dropped):
        # Only candidates that decoded to something frame-sized, at most once a second.
        if dropped.code != C.E_BAD_CRC or dropped.size < 8:
            return
        # Seconds of uptime, which never wrap (a ticks_diff would: 6.2 days after the last
        # complaint it turns negative, and a damaged link went unreported for 6.2 days).
        now = self.uptime_s()
        if self._last_complaint is not None and 0 <= now - self._last_complaint < 1:
            return
        self._last_complaint = now
        self.send(self.agent.dev.error(None, dropped.code, "frame dropped"))

    def _ticks_s(self):
        # Until the runtime hands in its uptime: ticks wrap, and a wrap reads as "long ago".
        return self.hal.ticks_ms() // 1000

    def send(self, body):
        self._writer.send(body)
        self.sent += 1


def _ignore():
    pass


class FrameWriter:
    """Sends frames through `write(bytes-like)`, the bytes framing.encode_frame() builds,
    holding one COBS block (at most 254 bytes, 508 escaped) instead of the whole frame: a
    1 KB answer costs no 1 KB allocation (encode_frame makes seven) and the buffer is taken
    once, at start-up."""

    def __init__(self, write, buf=None):
        self._write = write
        # [code byte, escaped: up to 2][block data, escaped: up to 2 * 254]
        if buf is None:
            buf = bytearray(_STAGING)
        elif len(buf) < _STAGING:
            raise ValueError("frame writer buffer of %d bytes: needs %d" % (len(buf), _STAGING))
        self._st = buf
        self._mv = memoryview(buf)
        self._k = 2         # next free position in _st
        self._run = 0       # data bytes in the current block (before escaping)

    def send(self, body):
        n = len(body)
        if n < 1 or n > C.MAX_FRAME_LIMIT:
            raise ValueError("frame body of %d bytes: a body is 1..%d bytes; split the message"
                             % (n, C.MAX_FRAME_LIMIT))
        crc = struct.pack("<I", framing.crc32(body) & 0xFFFFFFFF)
        self._k = 2
        self._run = 0
        self._write(b"\x00")
        self._stuff(body)
        self._stuff(crc)
        self._block()
        self._write(b"\x00")

    def _stuff(self, data):
        st = self._st
        k = self._k
        run = self._run
        for b in data:
            if b == 0:
                self._k = k
                self._run = run
                self._block()
                k = 2
                run = 0
                continue
            if b == 0x10:
                st[k] = 0x10
                st[k + 1] = 0x30
                k += 2
            elif b == 3:
                st[k] = 0x10
                st[k + 1] = 0x23
                k += 2
            else:
                st[k] = b
                k += 1
            run += 1
            if run == 254:      # a full block: code 0xFF, no zero implied after it
                self._k = k
                self._run = run
                self._block()
                k = 2
                run = 0
        self._k = k
        self._run = run

    def _block(self):
        """Write the current block behind its (escaped) COBS code byte."""
        code = self._run + 1
        st = self._st
        if code == 0x10 or code == 3:
            st[0] = 0x10
            st[1] = 0x30 if code == 0x10 else 0x23
            first = 0
        else:
            st[1] = code
            first = 1
        self._write(self._mv[first:self._k])
        self._k = 2
        self._run = 0
