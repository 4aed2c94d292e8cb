"""otaslots: a staged file becomes final only when it inflates to exactly its signed size and
SHA-256 (damaged stream, deflate bomb, tampering each have their reason), and a file copied
from the active slot is verified the same way. Run in the real VM on a temporary flash."""
import hashlib
import zlib

from edgekit.testing import mp

CODE = r"""
import json, os
import otaslots
s = otaslots.Slots(ROOT)
slot = s.staging()
s.clear(slot)
d = s.dir(slot)
def stage(name, data):
    f = s.open_temp(slot, name)
    s.write_at(f, 0, data)
    f.close()
out = {}
for name, data, size, digest in CASES:
    stage(name, data)
    out[name] = [s.finalize(slot, name, size, digest, "deflate"),
                 sorted(n for n in os.listdir(d) if n.endswith(name))]
# copy_in: the active slot's file, verified on the way
s.boot = {"slot": slot}
other = s.staging()
s.clear(other)
out["copy_ok"] = s.copy_in(other, "good.mpy", GOOD_SIZE, GOOD_DIGEST)
out["copy_bad"] = s.copy_in(other, "good.mpy", GOOD_SIZE, b"\x00" * 32)
out["other"] = sorted(os.listdir(s.dir(other)))
print(json.dumps(out))
"""


def test_inflate_and_copy_verify_size_and_digest(tmp_path):
    good = bytes(range(256)) * 20
    digest = hashlib.sha256(good).digest()
    packed = zlib.compress(good)
    cases = [("good.mpy", packed, len(good), digest),
             ("damaged.mpy", packed[:40] + bytes(40) + packed[80:], len(good), digest),
             ("bomb.mpy", zlib.compress(bytes(64 * 1024)), 1000, digest),
             ("tampered.mpy", zlib.compress(good[:-1] + b"!"), len(good), digest)]
    head = (f"CASES = {cases!r}\nGOOD_SIZE = {len(good)}\nGOOD_DIGEST = {digest!r}\n"
            f"ROOT = {str(tmp_path)!r}\n")
    out = mp.run_json(head + CODE, cwd=str(tmp_path))
    assert out["good.mpy"] == [None, ["good.mpy"]]
    assert out["damaged.mpy"][0] == ("file damaged.mpy: the deflate stream is damaged: "
                                     "discarded")
    assert out["bomb.mpy"][0] == "file bomb.mpy: it inflates beyond its 1000 bytes: discarded"
    assert out["tampered.mpy"][0] == ("file tampered.mpy: it does not match its SHA-256 "
                                      "(tampered or corrupted): discarded")
    for name in ("damaged.mpy", "bomb.mpy", "tampered.mpy"):
        assert out[name][1] == [], name              # nothing left behind, no final name
    assert out["copy_ok"] is True and out["copy_bad"] is False
    assert out["other"] == ["good.mpy"]              # the failed copy left no "+" file
