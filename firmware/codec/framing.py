# Device stream framing, protocol/SPEC.md section 2: `00 escape(COBS(body || crc32_le)) 00`.
#
# The receiver unescapes and COBS-decodes each byte as it arrives, straight into one buffer
# preallocated at max_frame + 4 (body and CRC), so memory never depends on what the link sends
# and nothing is allocated per byte. Results come back from feed() as a list whose items are:
#   bytes      a body whose CRC checked (still to be parsed as CBOR)
#   Dropped    a candidate thrown away, with the catalog code (bad_frame, bad_crc, too_large)
#   INTERRUPT  the pair 0D 03 (Ctrl-C) seen: the link agent drops to the REPL
# The host decoder (edgekit.protocol.framing) returns the same three shapes.
import struct

from catalog import E_BAD_CRC, E_BAD_FRAME, E_TOO_LARGE, MAX_FRAME_DEFAULT, MAX_FRAME_LIMIT

from micropython import const

try:
    from binascii import crc32
except ImportError:
    crc32 = None

_unpack_from = struct.unpack_from
_pack = struct.pack

# Nibble table for CRC-32/ISO-HDLC (reflected 0xEDB88320): 16 entries instead of 256, for
# ports built without binascii.crc32; slow, but only there.
_CRC_NIBBLE = (
    0x00000000, 0x1DB71064, 0x3B6E20C8, 0x26D930AC, 0x76DC4190, 0x6B6B51F4, 0x4DB26158,
    0x5005713C, 0xEDB88320, 0xF00F9344, 0xD6D6A3E8, 0xCB61B38C, 0x9B64C2B0, 0x86D3D2D4,
    0xA00AE278, 0xBDBDF21C)


def crc32_table(data, crc=0):
    """CRC-32 as binascii.crc32, computed with the nibble table (the fallback)."""
    crc ^= 0xFFFFFFFF
    t = _CRC_NIBBLE
    for b in data:
        crc = t[(crc ^ b) & 0xF] ^ (crc >> 4)
        crc = t[(crc ^ (b >> 4)) & 0xF] ^ (crc >> 4)
    return crc ^ 0xFFFFFFFF


if crc32 is None:
    crc32 = crc32_table


class Dropped:
    """A candidate the receiver threw away (SPEC section 2).

    `code` is E_BAD_FRAME, E_BAD_CRC or E_TOO_LARGE. `size` is the number of bytes the
    candidate unescaped and COBS-decoded to, 0 when it did not decode that far: SPEC lets a
    device answer ERROR only when size >= 8."""

    def __init__(self, code, size=0):
        self.code = code
        self.size = size

    def __eq__(self, other):
        return isinstance(other, Dropped) and other.code == self.code and other.size == self.size

    def __ne__(self, other):
        return not self.__eq__(other)

    def __repr__(self):
        return "Dropped(%d, %d)" % (self.code, self.size)


class _Interrupt:
    def __repr__(self):
        return "INTERRUPT"


INTERRUPT = _Interrupt()


def max_wire(max_frame):
    """SPEC's bound on a candidate: the receiver never holds more than this."""
    return max_frame + max_frame // 254 + 16


def _cobs(r):
    """COBS (Cheshire & Baker): every run of up to 254 non-zero bytes gets a code byte."""
    out = bytearray()
    i = 0
    n = len(r)
    while True:
        j = r.find(b"\x00", i)
        if j < 0:
            j = n
        while j - i >= 254:
            out.append(0xFF)
            out += r[i:i + 254]
            i += 254
        out.append(j - i + 1)
        out += r[i:j]
        if j >= n:
            return out
        i = j + 1


def encode_frame(body):
    """The wire bytes `00 escape(COBS(body || crc32_le(body))) 00` for a 1..4096-byte body."""
    n = len(body)
    if n < 1 or n > MAX_FRAME_LIMIT:
        raise ValueError("frame body of %d bytes: a body is 1..%d bytes; split the message"
                         % (n, MAX_FRAME_LIMIT))
    r = bytes(body) + _pack("<I", crc32(body) & 0xFFFFFFFF)
    # 0x10 first, so the escape bytes the second replace inserts are not escaped again
    e = bytes(_cobs(r)).replace(b"\x10", b"\x10\x30").replace(b"\x03", b"\x10\x23")
    return b"\x00" + e + b"\x00"


# Decoder states
_IDLE = const(0)      # nothing since the last 0x00
_TAKING = const(1)    # inside a candidate that is still valid
_DROPPING = const(2)  # candidate failed: skip to the next 0x00, then report it once


class FrameDecoder:
    """Streaming receiver: feed() any chunks (one byte at a time works), get results back."""

    def __init__(self, max_frame=MAX_FRAME_DEFAULT):
        if max_frame < 1 or max_frame > MAX_FRAME_LIMIT:
            raise ValueError("max_frame %d: must be 1..%d" % (max_frame, MAX_FRAME_LIMIT))
        self.max_frame = max_frame
        self._cap = max_frame + 4
        self._buf = bytearray(self._cap)
        self._mv = memoryview(self._buf)
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

    def feed(self, data):
        """Take the next bytes from the link; return the results they complete, in order.

        With nothing complete the result is an empty tuple, so feeding one byte at a time
        allocates nothing."""
        out = None
        buf = self._buf
        cap = self._cap
        state = self._state
        n = self._n
        rem = self._rem
        zero = self._zero
        esc = self._esc
        last = self._last
        for b in data:
            if b == 3:
                # A frame never holds 0x03 (it is escaped), so this is Ctrl-C or line noise.
                if last == 0x0D:
                    if out is None:
                        out = []
                    out.append(INTERRUPT)
                    state = _IDLE
                    n = rem = 0
                    zero = esc = False
                last = 3
                continue
            last = b
            if b == 0:
                if state == _TAKING:
                    if esc or rem:
                        self._err = E_BAD_FRAME
                        state = _DROPPING
                    else:
                        if out is None:
                            out = []
                        self._n = n
                        state = self._finish(out)
                if state == _DROPPING:
                    self.dropped += 1
                    if out is None:
                        out = []
                    out.append(Dropped(self._err, n if self._err == E_BAD_CRC else 0))
                state = _IDLE
                n = rem = 0
                zero = esc = False
                continue
            if state == _DROPPING:
                continue
            state = _TAKING
            if esc:
                esc = False
                if b == 0x30:
                    b = 0x10
                elif b == 0x23:
                    b = 3
                else:
                    self._err = E_BAD_FRAME
                    state = _DROPPING
                    continue
            elif b == 0x10:
                esc = True
                continue
            if rem:
                if n >= cap:
                    self._err = E_TOO_LARGE
                    state = _DROPPING
                    continue
                buf[n] = b
                n += 1
                rem -= 1
            else:
                # a COBS code byte: the previous block ended with a 0x00 unless it was full
                if zero:
                    if n >= cap:
                        self._err = E_TOO_LARGE
                        state = _DROPPING
                        continue
                    buf[n] = 0
                    n += 1
                rem = b - 1
                zero = b != 0xFF
        self._state = state
        self._n = n
        self._rem = rem
        self._zero = zero
        self._esc = esc
        self._last = last
        return () if out is None else out

    def _finish(self, out):
        """A complete, well-formed candidate of self._n bytes: check length and CRC."""
        n = self._n
        if n >= 5:
            body = self._mv[:n - 4]
            if crc32(body) & 0xFFFFFFFF == _unpack_from("<I", self._buf, n - 4)[0]:
                self.frames += 1
                out.append(bytes(body))
                return _IDLE
        self._err = E_BAD_CRC
        return _DROPPING
