"""Stream framing, protocol/SPEC.md section 2: `00 escape(COBS(body || crc32_le)) 00`.

The host twin of firmware/codec/framing.py, with the same results, byte for byte (proved by
tests/host/test_fuzz_frames.py, which feeds both the same streams). `FrameDecoder.feed()`
returns a list whose items are:

- `bytes`: a body whose CRC checked (still to be parsed as CBOR);
- `Dropped(code, size)`: a candidate thrown away, `code` being the catalog's `E_BAD_FRAME`,
  `E_BAD_CRC` or `E_TOO_LARGE`, and `size` what it COBS-decoded to (0 if it did not);
- `INTERRUPT`: the pair 0D 03 (Ctrl-C) was seen outside a frame.

Why decode as bytes arrive: the receiver then holds at most max_frame + 4 decoded bytes, which
bounds memory by what the peer may legitimately send rather than by what the link carries.
Runs of plain data inside a COBS block are copied in one slice, so the per-byte Python path
only sees code bytes, escapes and delimiters.
"""
import binascii
import re
import struct
from dataclasses import dataclass

from edgekit import catalog

__all__ = ["Dropped", "INTERRUPT", "FrameDecoder", "encode_frame", "max_wire"]


@dataclass(frozen=True)
class Dropped:
    """A candidate the receiver threw away; SPEC lets a device answer it only if size >= 8."""
    code: int
    size: int = 0

    def __repr__(self):
        return f"Dropped({catalog.error_name(self.code)}, size={self.size})"


class _Interrupt:
    def __repr__(self):
        return "INTERRUPT"


INTERRUPT = _Interrupt()

# Bytes that end a run of plain data: delimiter, Ctrl-C / noise, escape.
_SPECIAL = re.compile(rb"[\x00\x03\x10]")
_DELIM_OR_ETX = re.compile(rb"[\x00\x03]")

_IDLE, _TAKING, _DROPPING = 0, 1, 2


def max_wire(max_frame: int) -> int:
    """SPEC's bound on a candidate: the receiver never holds more than this."""
    return max_frame + max_frame // 254 + 16


def _cobs(r: bytes) -> bytes:
    """COBS (Cheshire & Baker): every run of up to 254 non-zero bytes gets a code byte."""
    out = bytearray()
    i, n = 0, len(r)
    while True:
        j = r.find(0, i)
        if j < 0:
            j = n
        while j - i >= 254:
            out.append(0xFF)
            out += r[i:i + 254]
            i += 254
        out.append(j - i + 1)
        out += r[i:j]
        if j >= n:
            return bytes(out)
        i = j + 1


def encode_frame(body: bytes) -> bytes:
    """The wire bytes `00 escape(COBS(body || crc32_le(body))) 00` for a 1..4096-byte body."""
    body = bytes(body)
    if not 1 <= len(body) <= catalog.MAX_FRAME_LIMIT:
        raise ValueError(f"frame body of {len(body)} bytes: a body is 1.."
                         f"{catalog.MAX_FRAME_LIMIT} bytes; split the message")
    r = body + struct.pack("<I", binascii.crc32(body))
    # 0x10 first, so the escape bytes the second replace inserts are not escaped again
    e = _cobs(r).replace(b"\x10", b"\x10\x30").replace(b"\x03", b"\x10\x23")
    return b"\x00" + e + b"\x00"


class FrameDecoder:
    """Streaming receiver: feed() any chunks (one byte at a time works), get results back."""

    def __init__(self, max_frame: int = catalog.MAX_FRAME_DEFAULT):
        if not 1 <= max_frame <= catalog.MAX_FRAME_LIMIT:
            raise ValueError(f"max_frame {max_frame}: must be 1..{catalog.MAX_FRAME_LIMIT}")
        self.max_frame = max_frame
        self._cap = max_frame + 4
        self._buf = bytearray(self._cap)
        self.frames = 0     # bodies delivered
        self.dropped = 0    # candidates thrown away
        self._last = 0      # previous byte, for the 0D 03 pair across chunks
        self._reset()

    def _reset(self):
        self._state = _IDLE
        self._n = 0         # decoded bytes held
        self._rem = 0       # data bytes left in the current COBS block; 0: next is a code byte
        self._zero = False  # the block just ended owes a 0x00 before the next block's data
        self._esc = False   # last byte was the escape 0x10
        self._err = 0

    def _drop(self, code):
        self._err = code
        self._state = _DROPPING

    def _end_candidate(self, out):
        if self._state == _TAKING:
            if self._esc or self._rem:
                self._drop(catalog.E_BAD_FRAME)
            else:
                self._finish(out)
        if self._state == _DROPPING:
            self.dropped += 1
            size = self._n if self._err == catalog.E_BAD_CRC else 0
            out.append(Dropped(self._err, size))
        self._reset()

    def _finish(self, out):
        n = self._n
        if n >= 5:
            body = bytes(self._buf[:n - 4])
            if binascii.crc32(body) == struct.unpack_from("<I", self._buf, n - 4)[0]:
                self.frames += 1
                out.append(body)
                self._state = _IDLE
                return
        self._drop(catalog.E_BAD_CRC)

    def feed(self, data) -> list:
        """Take the next bytes from the link; return the results they complete, in order."""
        data = bytes(data)
        out = []
        i, end = 0, len(data)
        while i < end:
            if self._state == _DROPPING:
                m = _DELIM_OR_ETX.search(data, i)
                j = m.start() if m else end
                if j > i:
                    self._last = data[j - 1]
                    i = j
                    continue
            elif self._state == _TAKING and self._rem and not self._esc:
                stop = min(end, i + self._rem)
                m = _SPECIAL.search(data, i, stop)
                j = m.start() if m else stop
                if j > i:
                    run = j - i
                    if self._n + run > self._cap:
                        self._drop(catalog.E_TOO_LARGE)
                    else:
                        self._buf[self._n:self._n + run] = data[i:j]
                        self._n += run
                        self._rem -= run
                    self._last = data[j - 1]
                    i = j
                    continue
            self._byte(data[i], out)
            i += 1
        return out

    def _byte(self, b, out):
        """The per-byte state machine, identical to the device's FrameDecoder.feed loop."""
        if b == 3:
            # A frame never holds 0x03 (it is escaped), so this is Ctrl-C or line noise.
            if self._last == 0x0D:
                out.append(INTERRUPT)
                self._reset()
            self._last = 3
            return
        self._last = b
        if b == 0:
            self._end_candidate(out)
            return
        if self._state == _DROPPING:
            return
        self._state = _TAKING
        if self._esc:
            self._esc = False
            if b == 0x30:
                b = 0x10
            elif b == 0x23:
                b = 3
            else:
                self._drop(catalog.E_BAD_FRAME)
                return
        elif b == 0x10:
            self._esc = True
            return
        if self._rem:
            self._put(b)
            self._rem -= 1
        else:
            # a COBS code byte: the previous block ended with a 0x00 unless it was full
            if self._zero:
                self._put(0)
            self._rem = b - 1
            self._zero = b != 0xFF

    def _put(self, b):
        if self._state != _TAKING:
            return
        if self._n >= self._cap:
            self._drop(catalog.E_TOO_LARGE)
            return
        self._buf[self._n] = b
        self._n += 1
