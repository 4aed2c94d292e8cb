"""Mutation fuzzing of frames and CBOR bodies, on the host and in the device VM.

- Mutated streams (bit flips, truncations, insertions, deletions, repeats, Ctrl-C, random
  chunking) never crash either decoder, yield only the three result kinds, and never deliver
  a body that was not sent (a CRC-32 collision at these sizes is ~2**-32 per candidate).
- The device decoder's results equal the host decoder's, item for item, on the same streams.
- Mutated deterministic CBOR never crashes either strict decoder: each input is accepted by
  both (and re-encodes to itself) or refused by both with a catalog code.
"""
import json
import random
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekit import catalog
from edgekit.protocol import cbor
from edgekit.protocol.framing import INTERRUPT, Dropped, FrameDecoder, encode_frame
from edgekit.testing import mp

FRAME_CODES = {catalog.E_BAD_FRAME, catalog.E_BAD_CRC, catalog.E_TOO_LARGE}
CBOR_CODES = {catalog.E_BAD_CBOR, catalog.E_TOO_DEEP, catalog.E_TOO_LARGE}
# Bytes that change a CBOR head's meaning: long heads, indefinite, reserved, floats, tags.
INTERESTING = [0x00, 0x03, 0x0D, 0x10, 0x17, 0x18, 0x19, 0x1A, 0x1B, 0x1C, 0x1F, 0x5F, 0x7F,
               0x9F, 0xBF, 0xC0, 0xD2, 0xF7, 0xF8, 0xF9, 0xFA, 0xFB, 0xFF, 0x80, 0xA0]


def mutate(data: bytes, rng: random.Random, n: int) -> bytes:
    b = bytearray(data)
    for _ in range(n):
        op = rng.randrange(7)
        at = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(at, len(b) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            del b[at:]
        elif op == 2:
            b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4)))
        elif op == 3:
            del b[at:at + rng.randrange(1, 6)]
        elif op == 4:
            b[at:at] = b[at:at + rng.randrange(1, 40)]
        elif op == 5 and b:
            b[min(at, len(b) - 1)] = rng.choice(INTERESTING)
        else:
            b[at:at] = rng.choice([b"\r\x03", b"\x03", b"\x00", b"\x10", b">>> "])
    return bytes(b)


def feed_in_chunks(dec, stream, cuts):
    out, prev = [], 0
    for cut in cuts + [len(stream)]:
        out += dec.feed(stream[prev:cut])
        prev = cut
    return out


def random_stream(rng):
    bodies = [bytes(rng.choice([rng.randrange(256), 0, 3, 16, 0xFF])
                    for _ in range(rng.choice([1, 4, 20, 100, 253, 300])))
              for _ in range(rng.randrange(1, 4))]
    clean = b"".join(encode_frame(b) for b in bodies)
    stream = mutate(clean, rng, rng.randrange(0, 4))
    cuts = sorted(rng.randrange(len(stream) + 1) for _ in range(rng.randrange(0, 8)))
    return bodies, stream, cuts


def check_results(res, bodies):
    for r in res:
        if isinstance(r, bytes):
            assert r in bodies, f"a body that was never sent was delivered: {r.hex()}"
        elif isinstance(r, Dropped):
            assert r.code in FRAME_CODES and r.size >= 0
        else:
            assert r is INTERRUPT, r


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([16, 64, 300, 1024]))
def test_host_decoder_survives_mutated_streams(seed, max_frame):
    rng = random.Random(seed)
    bodies, stream, cuts = random_stream(rng)
    dec = FrameDecoder(max_frame)
    res = feed_in_chunks(dec, stream, cuts)
    check_results(res, [b for b in bodies if len(b) <= max_frame])
    assert len(dec._buf) == max_frame + 4
    assert dec.frames == sum(isinstance(r, bytes) for r in res)
    assert dec.dropped == sum(isinstance(r, Dropped) for r in res)


def _as_json(res):
    out = []
    for r in res:
        if isinstance(r, bytes):
            out.append(["B", r.hex()])
        elif isinstance(r, Dropped):
            out.append(["D", r.code, r.size])
        else:
            out.append(["I"])
    return out


DEVICE_FRAMES = r'''
import framing, json, binascii
for h, max_frame, cuts in json.loads(%r):
    stream = binascii.unhexlify(h)
    mv = memoryview(stream)
    d = framing.FrameDecoder(max_frame)
    res = []
    prev = 0
    try:
        for cut in cuts + [len(stream)]:
            res += d.feed(mv[prev:cut])
            prev = cut
    except Exception as e:
        print(json.dumps(["crash", repr(e)]))
        continue
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
    print(json.dumps(out))
'''


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1))
def test_device_decoder_gives_the_host_results_on_mutated_streams(seed):
    rng = random.Random(seed)
    cases, expected = [], []
    for _ in range(150):
        bodies, stream, cuts = random_stream(rng)
        max_frame = rng.choice([16, 64, 300, 1024])
        cases.append((stream.hex(), max_frame, cuts))
        res = feed_in_chunks(FrameDecoder(max_frame), stream, cuts)
        check_results(res, bodies)
        expected.append(_as_json(res))
    # a logic test: the batch arrives as one source literal, larger than a board heap
    lines = mp.run(DEVICE_FRAMES % json.dumps(cases), heap="4M").splitlines()
    got = [json.loads(line) for line in lines if line.strip()]
    assert len(got) == len(cases)
    for case, want, have in zip(cases, expected, got):
        assert have == want, f"stream {case[0]} (max_frame {case[1]}, cuts {case[2]})"


# --- CBOR bodies ------------------------------------------------------------------------------

def random_value(rng, depth=1):
    kind = rng.randrange(12 if depth < 6 else 9)
    if kind == 0:
        return rng.choice([0, 23, 24, 255, 256, 65535, 65536, 2**32, 2**64 - 1, -1, -25, -2**64])
    if kind == 1:
        return rng.randrange(-2**40, 2**40)
    if kind == 2:
        return rng.choice([0.0, -0.0, 1.5, 65504.0, 1e-7, 12.345, float("inf"), float("nan"),
                           struct.unpack(">f", struct.pack(">I", rng.getrandbits(32)))[0]])
    if kind == 3:
        return "".join(rng.choice(["a", "é", "€", "𝄞", "z"]) for _ in range(rng.randrange(30)))
    if kind == 4:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(30)))
    if kind in (5, 6, 7, 8):
        return rng.choice([True, False, None, 1, "k"])
    if kind in (9, 10):
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    return {rng.choice([rng.randrange(-30, 30), "k%d" % rng.randrange(9), rng.randrange(2**33)]):
            random_value(rng, depth + 1) for _ in range(rng.randrange(5))}


def host_verdict(data: bytes):
    try:
        value = cbor.loads(data)
    except cbor.CBORError as e:
        assert e.code in CBOR_CODES, e
        return ["err", e.code]
    assert cbor.dumps(value) == data, "the strict decoder accepted a non-deterministic input"
    return ["ok", _has_array_key(value)]


def _has_array_key(v):
    """cbor2 decodes an array map key as a tuple, which the host takes; the device refuses
    array and map keys (Python cannot hash a list), so such inputs may differ."""
    if isinstance(v, dict):
        return any(isinstance(k, tuple) or _has_array_key(x) for k, x in v.items())
    if isinstance(v, list):
        return any(_has_array_key(x) for x in v)
    if isinstance(v, cbor.Tag):
        return _has_array_key(v.value)
    return False


DEVICE_CBOR = r'''
import cbor, json, binascii
for h in json.loads(%r):
    data = binascii.unhexlify(h)
    try:
        v = cbor.loads(data)
    except cbor.CBORError as e:
        print(json.dumps(["err", e.code]))
        continue
    except Exception as e:
        print(json.dumps(["crash", repr(e)]))
        continue
    try:
        print(json.dumps(["ok", cbor.dumps(v) == data]))
    except Exception as e:
        print(json.dumps(["ok", "re-encoding failed: " + repr(e)]))
'''


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1))
def test_mutated_cbor_never_crashes_and_both_decoders_agree(seed):
    rng = random.Random(seed)
    inputs = []
    while len(inputs) < 400:
        value = random_value(rng)
        if rng.randrange(8) == 0:
            value = cbor.Tag(18, [value])
        data = cbor.dumps(value)
        inputs.append(mutate(data, rng, rng.randrange(1, 4)) if rng.randrange(6) else data)
    host = [host_verdict(d) for d in inputs]
    lines = mp.run(DEVICE_CBOR % json.dumps([d.hex() for d in inputs]), heap="4M")
    device = [json.loads(line) for line in lines.splitlines() if line.strip()]
    assert len(device) == len(inputs)
    accepted = 0
    for data, (h_kind, h_detail), (d_kind, d_detail) in zip(inputs, host, device):
        assert d_kind != "crash", f"device crashed on {data.hex()}: {d_detail}"
        if d_kind == "err":
            assert d_detail in CBOR_CODES
        if h_kind == "ok" and h_detail:
            assert d_kind == "err", data.hex()
            continue
        assert d_kind == h_kind, f"host {h_kind}, device {d_kind} on {data.hex()}"
        if d_kind == "ok":
            accepted += 1
            assert d_detail is True, f"device re-encoding differs for {data.hex()}"
        else:
            assert d_detail == h_detail, f"codes differ on {data.hex()}: host {h_detail}, " \
                                         f"device {d_detail}"
    assert accepted > 40, "too few inputs survived mutation to test acceptance"
