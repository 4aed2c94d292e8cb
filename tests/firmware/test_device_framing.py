"""firmware/codec/framing.py in the real MicroPython VM: SPEC section 2, rule by rule.

(Named test_device_framing, not test_framing: tests/host/test_framing.py has that basename and
pytest's default import mode refuses two test modules of one name without packages.)

Every scenario is fed whole, one byte at a time and in odd-sized chunks, in one VM run; the
expected results are written from the rules. Frames are built by the host encoder, which
tests/host/test_framing.py checks against a textbook COBS.
"""
import binascii
import json
import os
import random
import struct

import pytest

from edgekit import catalog
from edgekit.protocol.framing import encode_frame
from edgekit.testing import mp

BAD_FRAME, BAD_CRC, TOO_LARGE = catalog.E_BAD_FRAME, catalog.E_BAD_CRC, catalog.E_TOO_LARGE
INT = ["I"]


def B(body):
    return ["B", body.hex()]


def D(code, size=0):
    return ["D", code, size]


def _raw(r: bytes) -> bytes:
    """A candidate whose decoded content is exactly `r` (no CRC added)."""
    out, block = bytearray(), bytearray()
    for b in r:
        if b == 0:
            out += bytes([len(block) + 1]) + block
            block.clear()
        else:
            block.append(b)
    out += bytes([len(block) + 1]) + block
    assert len(block) < 254
    esc = bytes(out).replace(b"\x10", b"\x10\x30").replace(b"\x03", b"\x10\x23")
    return b"\x00" + esc + b"\x00"


_rng = random.Random(2)
_BODY = bytes(_rng.randrange(256) for _ in range(700))
_CRC_BAD = bytearray(b"twelve bytes" + struct.pack("<I", binascii.crc32(b"twelve bytes")))
_CRC_BAD[0] ^= 0x80
_TEXT = b"\r\nMicroPython v1.29.0; linux\r\n>>> print(1)\r\n1\r\n>>> "

# (name, stream, max_frame, expected results)
SCENARIOS = [
    ("one frame", encode_frame(b"hello"), 1024, [B(b"hello")]),
    ("random 700-byte body", encode_frame(_BODY), 1024, [B(_BODY)]),
    ("bytes that need escaping", encode_frame(b"\x03\x10" * 300), 1024,
     [B(b"\x03\x10" * 300)]),
    ("zeros", encode_frame(b"\x00" * 600), 1024, [B(b"\x00" * 600)]),
    ("full COBS blocks", encode_frame(b"\xff" * 1016), 1024, [B(b"\xff" * 1016)]),
    ("exactly max_frame", encode_frame(b"\x10" * 64), 64, [B(b"\x10" * 64)]),
    ("max_frame + 1", encode_frame(b"\x10" * 65), 64, [D(TOO_LARGE)]),
    ("max_frame + 1 of zeros", encode_frame(b"\x00" * 65), 64, [D(TOO_LARGE)]),
    ("far too large, then a frame", encode_frame(_BODY) + encode_frame(b"ok"), 64,
     [D(TOO_LARGE), B(b"ok")]),
    ("bad escape", encode_frame(b"\x10abc").replace(b"\x10\x30", b"\x10\x31"), 1024,
     [D(BAD_FRAME)]),
    ("escape at the end", b"\x00\x02a\x10\x00", 1024, [D(BAD_FRAME)]),
    ("code byte past the end", b"\x00\x09abcd\x00", 1024, [D(BAD_FRAME)]),
    ("shorter than CRC + 1", _raw(b"abcd"), 1024, [D(BAD_CRC, 4)]),
    ("empty body with its CRC", _raw(struct.pack("<I", binascii.crc32(b""))), 1024,
     [D(BAD_CRC, 4)]),
    ("CRC mismatch", _raw(bytes(_CRC_BAD)), 1024, [D(BAD_CRC, 16)]),
    ("empty candidates", b"\x00" * 9, 1024, []),
    ("garbage then a frame", b"\x47\x41\x52\x42" + encode_frame(b"after"), 1024,
     [D(BAD_FRAME), B(b"after")]),
    ("REPL text between frames", encode_frame(b"1") + _TEXT + encode_frame(b"2") + _TEXT,
     1024, [B(b"1"), D(BAD_FRAME), B(b"2")]),
    ("text with no 0x00 is never reported", _TEXT * 40, 64, []),
    ("Ctrl-C outside a frame", b"\r\x03" + encode_frame(b"x") + b"\r\x03", 1024,
     [INT, B(b"x"), INT]),
    ("lone 0x03 is ignored", b"\x03" + encode_frame(b"abc")[:3] + b"\x03"
     + encode_frame(b"abc")[3:] + b"\x03", 1024, [B(b"abc")]),
    ("Ctrl-C inside a frame drops it", encode_frame(b"abcdefgh" * 4)[:9] + b"\r\x03"
     + encode_frame(b"abcdefgh" * 4)[9:] + encode_frame(b"next"), 1024,
     [INT, D(BAD_FRAME), B(b"next")]),
]

SCRIPT = r'''
import framing, json, binascii

def show(res):
    out = []
    for r in res:
        if isinstance(r, bytes):
            out.append(["B", binascii.hexlify(r).decode()])
        elif isinstance(r, framing.Dropped):
            out.append(["D", r.code, r.size])
        elif r is framing.INTERRUPT:
            out.append(["I"])
        else:
            out.append(["?", repr(r)])
    return out

for h, max_frame in json.loads(%r):
    stream = binascii.unhexlify(h)
    runs = []
    for chunk in (0, 1, 3, 64):
        d = framing.FrameDecoder(max_frame)
        res = []
        if chunk:
            mv = memoryview(stream)
            for i in range(0, len(stream), chunk):
                res += d.feed(mv[i:i + chunk])
        else:
            res += d.feed(stream)
        runs.append(show(res))
    print(json.dumps(runs))
'''


@pytest.fixture(scope="module")
def device_runs():
    cases = [(stream.hex(), max_frame) for _, stream, max_frame, _ in SCENARIOS]
    out = mp.run(SCRIPT % json.dumps(cases))
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.mark.parametrize("i", range(len(SCENARIOS)), ids=[s[0] for s in SCENARIOS])
def test_device_decoder_follows_spec(device_runs, i):
    name, _, _, expected = SCENARIOS[i]
    whole, one, three, sixty_four = device_runs[i]
    assert whole == expected, name
    assert one == expected and three == expected and sixty_four == expected, \
        f"{name}: results depend on how the stream was split"


def test_device_encoder_writes_the_host_bytes():
    rng = random.Random(11)
    bodies = [bytes(rng.randrange(256) for _ in range(rng.choice([1, 5, 253, 254, 255, 1024])))
              for _ in range(60)]
    bodies += [b"\x00" * 254, b"\x01" * 254, b"\x01" * 508, b"\x03" * 10, b"\x10" * 4096]
    # One body per stdin line: the test's own data then never shares the heap with the
    # encoder's 8 KB frame buffer (as one JSON string and its list it took ~100 KB of 190).
    script = r'''
import framing, sys, binascii
while True:
    h = sys.stdin.readline().strip()
    if not h:
        break
    print(binascii.hexlify(framing.encode_frame(binascii.unhexlify(h))).decode())
'''
    stdin = "".join(b.hex() + "\n" for b in bodies).encode()
    got = mp.run(script, heap="190K", stdin=stdin).split()
    assert got == [encode_frame(b).hex() for b in bodies]


def test_device_refuses_bad_sizes_with_a_clear_error():
    script = r'''
import framing, json
out = []
for make in (lambda: framing.encode_frame(b""), lambda: framing.encode_frame(b"x" * 4097),
             lambda: framing.FrameDecoder(0), lambda: framing.FrameDecoder(4097)):
    try:
        make()
        out.append("accepted")
    except ValueError as e:
        out.append(str(e))
print(json.dumps(out))
'''
    res = mp.run_json(script)
    assert "split the message" in res[0] and "split the message" in res[1]
    assert "max_frame" in res[2] and "max_frame" in res[3]


def test_feeding_allocates_nothing_until_a_result_is_complete():
    body = os.urandom(1000)
    wire = encode_frame(body)
    script = r'''
import framing, micropython, json, binascii
wire = binascii.unhexlify(%r)
noise = b"\r\n>>> noise \x03\x10\x10 without a delimiter " * 40
d = framing.FrameDecoder(1024)
ONE = [bytes((i,)) for i in range(256)]  # one-byte reads, made before the heap is locked
chunks = [wire[i:i + 100] for i in range(0, len(wire) - 1, 100)]
chunks[-1] = chunks[-1][:-1]
d2 = framing.FrameDecoder(1024)
ok = True
micropython.heap_lock()
try:
    for i in range(len(wire) - 1):
        d.feed(ONE[wire[i]])
    for c in chunks:
        d2.feed(c)
    d2.feed(noise)
except MemoryError:
    ok = False
micropython.heap_unlock()
last = d.feed(wire[-1:])
print(json.dumps([ok, binascii.hexlify(last[0]).decode() if last else None, len(d._buf)]))
''' % wire.hex()
    ok, last, buf_len = mp.run_json(script)
    assert ok, "feed() allocated on the heap before a result was complete"
    assert last == body.hex()
    assert buf_len == 1024 + 4


def test_table_crc_fallback_matches_binascii():
    script = r'''
import framing, binascii, json, os
out = []
for n in (0, 1, 7, 64, 1000):
    data = os.urandom(n)
    out.append(framing.crc32_table(data) == binascii.crc32(data))
framing.crc32 = framing.crc32_table   # a port without binascii.crc32
body = os.urandom(300)
d = framing.FrameDecoder(512)
out.append(d.feed(framing.encode_frame(body)) == [body])
print(json.dumps(out))
'''
    assert mp.run_json(script) == [True] * 6
