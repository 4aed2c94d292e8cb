"""Every shared vector (protocol/vectors/) against the device implementation, inside the real
micropython. One VM run executes them all and reports each failure by name."""
from edgekit.paths import VECTORS_DIR
from edgekit.testing import mp

RUNNER = r"""
import json, struct
import catalog as C, cbor, cose, envelope, framing

VDIR = "@VDIR@"
def load(name):
    with open(VDIR + "/" + name) as f:
        return json.load(f)

def build(d):
    if d is None or d is True or d is False:
        return d
    if "tag" in d:
        return cbor.Tag(d["tag"], build(d["value"]))
    k = list(d.keys())[0]; a = d[k]
    if k == "int": return int(a)
    if k == "bytes": return bytes.fromhex(a)
    if k == "text": return a
    if k == "float": return struct.unpack(">d", bytes.fromhex(a))[0]
    if k == "array": return [build(v) for v in a]
    if k == "map":
        out = {}
        for kk, vv in a:
            key = build(kk)
            out[tuple(key) if isinstance(key, list) else key] = build(vv)
        return out
    raise ValueError(k)

fails = []
count = 0
def check(name, ok):
    global count
    count += 1
    if not ok:
        fails.append(name)

V = load("cbor.json")
for case in V["valid"]:
    v = build(case["value"])
    enc = cbor.dumps(v).hex()
    check("cbor dumps " + case["name"], enc == case["hex"])
    back = cbor.loads(bytes.fromhex(case["hex"]))
    check("cbor loads " + case["name"], cbor.dumps(back).hex() == case["hex"])
for case in V["invalid"]:
    try:
        cbor.loads(bytes.fromhex(case["hex"]))
        check("cbor reject " + case["name"], False)
    except ValueError as e:
        check("cbor code " + case["name"], getattr(e, "code", None) == case["code"])

KEYS = load("keys.json")
V = load("cose.json")
for case in V["valid"]:
    pub = bytes.fromhex(KEYS[case["signer"]]["public"])
    try:
        check("cose " + case["name"], cose.verify1(bytes.fromhex(case["hex"]), pub).hex()
              == case["payload"])
    except ValueError:
        check("cose " + case["name"], False)
for case in V["invalid"]:
    pub = bytes.fromhex(KEYS[case["signer"]]["public"])
    try:
        cose.verify1(bytes.fromhex(case["hex"]), pub)
        check("cose reject " + case["name"], False)
    except ValueError:
        check("cose reject " + case["name"], True)

M = load("messages.json")
ring = envelope.Keyring()
for e in M["keyring"]:
    ring.add(bytes.fromhex(KEYS[e["key"]]["public"]), e["role"])
# Each body as bytes (the serial link's) and as a view of a buffer (the network's receive
# buffer): the same outcome, and a payload of bytes either way (no view escapes).
for case in M["cases"]:
    payload = None
    for src in ("bytes", "view"):
        last = {}
        for k, v in M["last_seq"].items():
            last[bytes.fromhex(KEYS[k]["kid"])] = v
        body = bytes.fromhex(case["hex"])
        if src == "view":
            body = memoryview(bytearray(body))
        try:
            m = envelope.open_body(body, ring, last, C.MAX_FRAME_LIMIT)
            check("msg %s %s" % (src, case["name"]), case["error"] is None)
            if src == "bytes":
                payload = m.payload
            else:
                check("msg view payload " + case["name"], m.payload == payload)
        except envelope.ProtoError as e:
            check("msg %s %s code %d" % (src, case["name"], e.code), e.code == case["error"])

F = load("framing.json")
for case in F["valid"]:
    body = bytes.fromhex(case["body"]); wire = bytes.fromhex(case["wire"])
    check("frame enc " + case["body"][:12], framing.encode_frame(body) == wire)
    out = framing.FrameDecoder(F["max_frame"]).feed(wire)
    check("frame dec " + case["body"][:12], len(out) == 1 and out[0] == body)
for case in F["invalid"]:
    out = framing.FrameDecoder(F["max_frame"]).feed(bytes.fromhex(case["wire"]))
    check("frame reject " + case["name"], len(out) == 1 and not isinstance(out[0], bytes)
          and out[0].code == case["code"])
out = framing.FrameDecoder(F["max_frame"]).feed(bytes.fromhex(F["stream"]["wire"]))
check("frame stream", [b.hex() for b in out if isinstance(b, bytes)] == F["stream"]["bodies"])
print(json.dumps({"count": count, "fails": fails}))
"""


def test_every_vector_on_the_device():
    result = mp.run_json(RUNNER.replace("@VDIR@", str(VECTORS_DIR)), heap="256K", timeout=300)
    assert result["fails"] == []
    assert result["count"] > 100
