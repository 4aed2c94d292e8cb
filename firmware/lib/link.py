# Moves bytes between the HAL link (UART/USB) and the agent: frames in, bodies to the agent,
# answers framed back. Rate-limits answers to broken candidates (SPEC 2), so line noise or
# REPL text cannot make the device flood the link.
import catalog as C
import framing

_CHUNK = 256


class Link:
    def __init__(self, hal, agent, max_frame):
        self.hal = hal
        self.port = hal.link
        self.agent = agent
        self.decoder = framing.FrameDecoder(max_frame)
        self._buf = bytearray(_CHUNK)
        self._mv = memoryview(self._buf)
        self._last_complaint = None
        self.sent = 0

    def poll(self):
        """Handle everything the link has now. Raises KeyboardInterrupt on Ctrl-C (0D 03)."""
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
                    raise KeyboardInterrupt
                else:
                    self._complain(result)

    def _complain(self, dropped):
        # Only candidates that decoded to something frame-sized, at most once a second.
        if dropped.code != C.E_BAD_CRC or dropped.size < 8:
            return
        now = self.hal.ticks_ms()
        if self._last_complaint is not None and \
                self.hal.ticks_diff(now, self._last_complaint) < 1000:
            return
        self._last_complaint = now
        self.send(self.agent.dev.error(None, dropped.code, "frame dropped"))

    def send(self, body):
        self.port.write(framing.encode_frame(body))
        self.sent += 1
