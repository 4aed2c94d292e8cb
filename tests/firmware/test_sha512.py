"""firmware/crypto/sha512.py in the real micropython, against CPython's hashlib.sha512."""
import hashlib

from edgekit.testing import mp

# Deterministic test data both sides can make cheaply: a 4096-byte stream of chained SHA-256
# blocks (micropython's hashlib has sha256).
BASE_CODE = r"""
import hashlib
def make_base():
    out = bytearray()
    block = b"edgekit sha512 test"
    while len(out) < 4096:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:4096])
BASE = make_base()
"""


def make_base():
    out = bytearray()
    block = b"edgekit sha512 test"
    while len(out) < 4096:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:4096])


BASE = make_base()
# Lengths around every padding boundary: 111 bytes is the longest tail that still fits the
# length field in its block, 112 needs a second block; 239/240 the same one block later.
LENGTHS = list(range(0, 301)) + [1023, 1024, 1025, 4096]
CHUNKS = [1, 127, 128, 129, 3, 1000, 4096, 111, 112, 239, 240, 0, 17, 2048, 255, 256]
STREAM_BYTES = 1 << 20


def expected_stream_digests():
    """Digests of the prefixes of the 1 MiB stream taken after each 64 KiB, and at the end."""
    h = hashlib.sha512()
    doubled = BASE + BASE
    pos = i = 0
    marks = []
    next_mark = 65536
    while pos < STREAM_BYTES:
        c = min(CHUNKS[i % len(CHUNKS)], STREAM_BYTES - pos)
        off = pos % 4096
        h.update(doubled[off:off + c])
        pos += c
        i += 1
        if pos >= next_mark:
            marks.append([pos, h.hexdigest()])
            next_mark += 65536
    return marks, h.hexdigest()


def test_one_shot_matches_hashlib_for_every_length_up_to_300_and_boundaries():
    # One line per length: a JSON list of 300+ digests would not fit a 110 KB heap.
    out = mp.run(BASE_CODE + r"""
import binascii
from sha512 import sha512
doubled = memoryview(BASE + BASE)
for n in %r:
    print(n, binascii.hexlify(sha512(doubled[:n])).decode())
""" % (LENGTHS,))
    got = dict(line.split() for line in out.splitlines() if line.strip())
    wrong = [n for n in LENGTHS
             if got.get(str(n)) != hashlib.sha512((BASE * 2)[:n]).hexdigest()]
    assert not wrong, f"sha512 differs from hashlib (or is missing) for lengths {wrong}"


def test_incremental_one_mebibyte_in_odd_chunks_with_intermediate_digests():
    out = mp.run_json(BASE_CODE + r"""
import json, binascii
from sha512 import Sha512
CHUNKS = %r
TOTAL = %d
doubled = memoryview(BASE + BASE)
h = Sha512()
pos = i = 0
marks = []
next_mark = 65536
while pos < TOTAL:
    c = min(CHUNKS[i %% len(CHUNKS)], TOTAL - pos)
    off = pos %% 4096
    h.update(doubled[off:off + c])
    pos += c
    i += 1
    if pos >= next_mark:
        # digest() must not finalise: hashing continues after it
        marks.append([pos, binascii.hexlify(h.digest()).decode()])
        next_mark += 65536
print(json.dumps({"marks": marks, "final": binascii.hexlify(h.digest()).decode()}))
""" % (CHUNKS, STREAM_BYTES), timeout=300)
    marks, final = expected_stream_digests()
    assert out["marks"] == marks
    assert out["final"] == final


def test_accepts_bytes_like_and_rejects_text():
    out = mp.run_json(r"""
import json, binascii
from sha512 import sha512, Sha512
data = b"The quick brown fox jumps over the lazy dog"
res = {
    "bytes": sha512(data),
    "bytearray": sha512(bytearray(data)),
    "memoryview": sha512(memoryview(data)[4:]),
    "ctor_then_update": None,
}
h = Sha512(data[:10])
h.update(data[10:])
res["ctor_then_update"] = h.digest()
res = {k: binascii.hexlify(v).decode() for k, v in res.items()}
try:
    sha512("text")
    res["str"] = "accepted"
except TypeError as e:
    res["str"] = str(e)
print(json.dumps(res))
""")
    data = b"The quick brown fox jumps over the lazy dog"
    want = hashlib.sha512(data).hexdigest()
    assert out["bytes"] == out["bytearray"] == out["ctor_then_update"] == want
    assert out["memoryview"] == hashlib.sha512(data[4:]).hexdigest()
    assert "encode" in out["str"], out["str"]


def test_uses_hashlib_sha512_when_the_port_has_one():
    # No MicroPython port ships sha512 today; a fake hashlib proves the dispatch.
    out = mp.run_json(r"""
import json, sys
class FakeSha512:
    made = 0
    def __init__(self, data=b""):
        FakeSha512.made += 1
        self.data = bytes(data)
    def update(self, data):
        self.data += bytes(data)
    def digest(self):
        return b"N" * 64
class FakeHashlib:
    sha512 = FakeSha512
sys.modules["hashlib"] = FakeHashlib()
import sha512
h = sha512.Sha512(b"ab")
h.update(b"c")
print(json.dumps({"oneshot": sha512.sha512(b"abc") == b"N" * 64, "made": FakeSha512.made,
                  "incremental": h.digest() == b"N" * 64}))
""")
    assert out == {"oneshot": True, "made": 2, "incremental": True}
