"""Every shared vector (protocol/vectors/) against the host implementation, and the files
against a fresh generation: the committed vectors can never drift from the code."""
import json
import math

import pytest

from edgekit import catalog as C
from edgekit.errors import ProtocolError
from edgekit.paths import VECTORS_DIR
from edgekit.protocol import cbor, cose, framing, messages, vectors


def load(name):
    return json.loads((VECTORS_DIR / name).read_text())


def test_committed_vectors_equal_a_fresh_generation():
    fresh = json.loads(json.dumps(vectors.generate()))
    for name, content in fresh.items():
        assert load(name) == content, f"{name} is stale: run `make vectors`"


def _same(a, b):
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return cbor.dumps(a) == cbor.dumps(b)


@pytest.mark.parametrize("case", load("cbor.json")["valid"], ids=lambda c: c["name"])
def test_cbor_valid(case):
    value = vectors.build(case["value"])
    assert cbor.dumps(value).hex() == case["hex"]
    assert _same(cbor.loads(bytes.fromhex(case["hex"])), value)


@pytest.mark.parametrize("case", load("cbor.json")["invalid"], ids=lambda c: c["name"])
def test_cbor_invalid(case):
    with pytest.raises(cbor.CBORError) as info:
        cbor.loads(bytes.fromhex(case["hex"]))
    assert info.value.code == case["code"]


KEYS = load("keys.json")


@pytest.mark.parametrize("case", load("cose.json")["valid"], ids=lambda c: c["name"])
def test_cose_valid(case):
    pub = bytes.fromhex(KEYS[case["signer"]]["public"])
    assert cose.verify1(bytes.fromhex(case["hex"]), pub).hex() == case["payload"]


@pytest.mark.parametrize("case", load("cose.json")["invalid"], ids=lambda c: c["name"])
def test_cose_invalid(case):
    pub = bytes.fromhex(KEYS[case["signer"]]["public"])
    with pytest.raises(cose.CoseError):
        cose.verify1(bytes.fromhex(case["hex"]), pub)


MSG = load("messages.json")


@pytest.mark.parametrize("case", MSG["cases"], ids=lambda c: c["name"])
def test_messages(case):
    ring = messages.Keyring()
    for entry in MSG["keyring"]:
        ring.add(bytes.fromhex(KEYS[entry["key"]]["public"]), entry["role"])
    last = {bytes.fromhex(KEYS[k]["kid"]): v for k, v in MSG["last_seq"].items()}
    replay = messages.ReplayGuard(last)
    body = bytes.fromhex(case["hex"])
    if case["error"] is None:
        msg = messages.open_body(body, ring, replay)
        assert msg.body == body
    else:
        with pytest.raises(ProtocolError) as info:
            messages.open_body(body, ring, replay)
        assert info.value.code == case["error"]
        assert replay.last == last   # a rejected body changed nothing


FR = load("framing.json")


@pytest.mark.parametrize("case", FR["valid"], ids=lambda c: c["body"][:16])
def test_framing_valid(case):
    body, wire = bytes.fromhex(case["body"]), bytes.fromhex(case["wire"])
    assert framing.encode_frame(body) == wire
    assert framing.FrameDecoder(FR["max_frame"]).feed(wire) == [body]
    assert 3 not in wire[1:-1] and 0 not in wire[1:-1]


@pytest.mark.parametrize("case", FR["invalid"], ids=lambda c: c["name"])
def test_framing_invalid(case):
    out = framing.FrameDecoder(FR["max_frame"]).feed(bytes.fromhex(case["wire"]))
    assert len(out) == 1 and not isinstance(out[0], bytes) and out[0].code == case["code"]


def test_framing_stream_resynchronises():
    out = framing.FrameDecoder(FR["max_frame"]).feed(bytes.fromhex(FR["stream"]["wire"]))
    assert [b.hex() for b in out if isinstance(b, bytes)] == FR["stream"]["bodies"]
