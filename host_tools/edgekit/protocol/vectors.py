"""Generate protocol/vectors/*.json from the host implementation (`make vectors`).

Values are written in a typed JSON form both implementations read (MicroPython has `json`):
  {"int": "-5"}  {"bytes": "00ff"}  {"text": "é"}  {"float": "<hex of IEEE-754 double>"}
  true / false / null   {"array": [...]}   {"map": [[key, value], ...]}   {"tag": 18, "value": v}
Keys are fixed seeds, so the files are reproducible byte for byte: tests regenerate them and
compare, so the committed vectors can never drift from the host implementation.
"""
import binascii
import hashlib
import json
import struct
import sys
from pathlib import Path

from edgekit import catalog as C
from edgekit.protocol import cbor, cose, framing, messages

Tag = cbor.Tag


def describe(value):
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return {"int": str(value)}
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, str):
        return {"text": value}
    if isinstance(value, float):
        return {"float": struct.pack(">d", value).hex()}
    if isinstance(value, (list, tuple)):
        return {"array": [describe(v) for v in value]}
    if isinstance(value, dict):
        return {"map": [[describe(k), describe(v)] for k, v in value.items()]}
    if isinstance(value, Tag):
        return {"tag": value.tag, "value": describe(value.value)}
    raise TypeError(type(value))


def build(desc):
    """Inverse of describe (used by the host tests)."""
    if desc is None or isinstance(desc, bool):
        return desc
    (kind, arg), = [(k, v) for k, v in desc.items() if k != "value"] or [("tag", None)]
    if kind == "int":
        return int(arg)
    if kind == "bytes":
        return bytes.fromhex(arg)
    if kind == "text":
        return arg
    if kind == "float":
        return struct.unpack(">d", bytes.fromhex(arg))[0]
    if kind == "array":
        return [build(v) for v in arg]
    if kind == "map":
        return {_key(build(k)): build(v) for k, v in arg}
    if kind == "tag":
        return Tag(desc["tag"], build(desc["value"]))
    raise ValueError(desc)


def _key(k):
    return tuple(k) if isinstance(k, list) else k


def seed(name):
    return hashlib.sha256(b"edgekit test vector key " + name.encode()).digest()


SIGNERS = {name: cose.SeedSigner(seed(name)) for name in
           ("fleet", "firmware", "operator", "device", "stranger")}


def cbor_vectors():
    values = [
        ("zero", 0), ("uint 23", 23), ("uint 24", 24), ("uint 255", 255), ("uint 256", 256),
        ("uint 65535", 65535), ("uint 65536", 65536), ("uint 2^32-1", 2**32 - 1),
        ("uint 2^32", 2**32), ("uint 2^64-1", 2**64 - 1), ("neg -1", -1), ("neg -24", -24),
        ("neg -25", -25), ("neg -2^64", -(2**64)), ("neg -2^32-1", -(2**32) - 1),
        ("empty bytes", b""), ("bytes", bytes(range(30))), ("empty text", ""),
        ("text unicode", "Grüße 水 \U0001F4A7"), ("false", False), ("true", True), ("null", None),
        ("float 0.0", 0.0), ("float -0.0", -0.0), ("float 1.5 (half)", 1.5),
        ("float 100000.0 (single)", 100000.0), ("float 1.1 (double)", 1.1),
        ("float 65504 (half max)", 65504.0), ("float 5.960464477539063e-08 (half subnormal)",
                                              5.960464477539063e-08),
        ("float inf", float("inf")), ("float -inf", float("-inf")), ("float nan", float("nan")),
        ("array nested", [1, [2, [3, []]], {}]),
        ("map RFC 8949 order", {24: "a", -1: "b", "z": 1, "aa": 2, 0: [], b"k": None}),
        ("map text keys (device identity record)",
         {"id": "e", "seed": b"1", "pub": b"2", "kind": "k", "fleet": "f", "site": "s"}),
        ("map text keys, many", {w: i for i, w in enumerate(
            "valve flow tamper leak burst battery volume site kind id seed pub fleet a bb"
            .split())}),
        ("senml pack", [{C.SENML_BN: "urn:dev:ek:0011:", C.SENML_BT: 1700000000,
                         C.SENML_N: "volume", C.SENML_U: "m3", C.SENML_V: 12.345},
                        {C.SENML_N: "flow", C.SENML_U: "m3/s", C.SENML_V: 0.0002,
                         C.SENML_T: -3600}]),
        ("depth 16", _nest(15)),
    ]
    valid = [{"name": n, "value": describe(v), "hex": cbor.dumps(v).hex()} for n, v in values]
    invalid = [
        ("indefinite array", "9f01ff", C.E_BAD_CBOR),
        ("indefinite text", "7f6161ff", C.E_BAD_CBOR),
        ("non-shortest uint", "1801", C.E_BAD_CBOR),
        ("non-shortest length", "5800", C.E_BAD_CBOR),
        ("duplicate keys", "a201010102", C.E_BAD_CBOR),
        ("keys out of order", "a202010101", C.E_BAD_CBOR),
        ("length-first order (RFC 7049)", "a22002181801", C.E_BAD_CBOR),
        ("trailing bytes", "0101", C.E_BAD_CBOR),
        ("truncated", "a2010102", C.E_BAD_CBOR),
        ("invalid utf-8", "62c328", C.E_BAD_CBOR),
        ("tag 1", "c10a", C.E_BAD_CBOR),
        ("bignum", "c249010000000000000000", C.E_BAD_CBOR),
        ("tag 18 nested", "81d280", C.E_BAD_CBOR),
        ("undefined", "f7", C.E_BAD_CBOR),
        ("simple 16", "f0", C.E_BAD_CBOR),
        ("reserved ai 28", "1c", C.E_BAD_CBOR),
        ("float64 for 1.0", "fb3ff0000000000000", C.E_BAD_CBOR),
        ("oversize length", "5affffffff00", C.E_BAD_CBOR),
        ("oversize array count", "9bffffffffffffffff", C.E_BAD_CBOR),
        ("depth 17", "81" * 16 + "01", C.E_TOO_DEEP),
        ("deep nesting 1000", "81" * 1000 + "01", C.E_TOO_DEEP),
        ("empty", "", C.E_BAD_CBOR),
        ("map key true", "a1f501", C.E_BAD_CBOR),
        ("map key null", "a1f601", C.E_BAD_CBOR),
        ("map key float", "a1f93e0001", C.E_BAD_CBOR),
        ("map key array", "a1810101", C.E_BAD_CBOR),
    ]
    for name, hexdata, code in invalid:  # the vectors must agree with the host decoder
        try:
            cbor.loads(bytes.fromhex(hexdata))
        except cbor.CBORError as exc:
            assert exc.code == code, (name, exc.code)
        else:
            raise AssertionError(f"host decoder accepted invalid vector {name}")
    return {"valid": valid,
            "invalid": [{"name": n, "hex": h, "code": c} for n, h, c in invalid]}


def _nest(levels):
    value = 1
    for _ in range(levels):
        value = [value]
    return value


def keys_section():
    return {name: {"seed": seed(name).hex(), "public": s.public_key_bytes.hex(),
                   "kid": s.kid.hex()} for name, s in SIGNERS.items()}


def cose_vectors():
    valid = []
    for name, signer, header, payload in [
        ("operator command", "operator",
         {C.HDR_TYPE: C.COMMAND, C.HDR_SEQ: 1, C.HDR_SENDER: "host"}, cbor.dumps({C.K_NAME: "x"})),
        ("device telemetry", "device",
         {C.HDR_TYPE: C.TELEMETRY, C.HDR_SEQ: 2**40, C.HDR_SENDER: "dev-0011"}, b"\xa0"),
        ("empty payload", "fleet", {}, b""),
    ]:
        data = cose.sign1(payload, SIGNERS[signer], header)
        valid.append({"name": name, "signer": signer, "payload": payload.hex(), "hex": data.hex()})
    base = bytes.fromhex(valid[0]["hex"])
    item = cbor.loads(base)
    prot, unprot, payload, sig = item.value
    flipped_sig = cbor.dumps(Tag(18, [prot, unprot, payload, bytes([sig[0] ^ 1]) + sig[1:]]))
    flipped_payload = cbor.dumps(Tag(18, [prot, unprot, payload + b"\x00", sig]))
    untagged = cbor.dumps([prot, unprot, payload, sig])
    valid.append({"name": "untagged", "signer": "operator", "payload": payload.hex(),
                  "hex": untagged.hex()})
    invalid = [
        {"name": "tampered signature", "signer": "operator", "hex": flipped_sig.hex()},
        {"name": "tampered payload", "signer": "operator", "hex": flipped_payload.hex()},
        {"name": "wrong key", "signer": "device", "hex": base.hex()},
        {"name": "short signature", "signer": "operator",
         "hex": cbor.dumps(Tag(18, [prot, unprot, payload, sig[:63]])).hex()},
        {"name": "three elements", "signer": "operator",
         "hex": cbor.dumps(Tag(18, [prot, payload, sig])).hex()},
        {"name": "alg ES256", "signer": "operator",
         "hex": _resign_with_header({C.COSE_ALG: -7}).hex()},
    ]
    return {"valid": valid, "invalid": invalid}


def _resign_with_header(header):
    prot = cbor.dumps(header)
    sig = SIGNERS["operator"].sign(cose.sig_structure(prot, b""))
    return cbor.dumps(Tag(18, [prot, {}, b"", sig]))


def message_vectors():
    """Envelope vectors: a receiver with a keyring and replay state opens each body."""
    ring = [{"key": name, "role": role} for name, role in
            [("fleet", C.ROLE_FLEET), ("firmware", C.ROLE_FIRMWARE),
             ("operator", C.ROLE_OPERATOR), ("device", C.ROLE_DEVICE)]]
    S = SIGNERS
    cmd = {C.K_NAME: "valve", C.K_ARGS: {"open": False}}
    cases = [
        ("operator command", messages.signed(C.COMMAND, cmd, S["operator"], 100, "host"), None),
        ("fleet key epoch", messages.signed(C.KEY_EPOCH, {C.K_EPOCH: 2}, S["fleet"], 5, "fleet"),
         None),
        ("device telemetry", messages.signed(C.TELEMETRY, {C.K_RECORDS: []}, S["device"], 7,
                                             "dev-0011"), None),
        ("unsigned hello", messages.unsigned(C.HELLO, 1, {C.K_PROTO: [1, 1]}), None),
        ("replayed command (seq 50 <= last 99)",
         messages.signed(C.COMMAND, cmd, S["operator"], 50, "host"), C.E_REPLAYED),
        ("replayed command (seq equal to last)",
         messages.signed(C.COMMAND, cmd, S["operator"], 99, "host"), C.E_REPLAYED),
        ("unknown key", messages.signed(C.COMMAND, cmd, S["stranger"], 101, "host"),
         C.E_UNKNOWN_KEY),
        ("device key signs a command", messages.signed(C.COMMAND, cmd, S["device"], 101, "host"),
         C.E_UNAUTHORIZED),
        ("operator signs a key epoch", messages.signed(C.KEY_EPOCH, {}, S["operator"], 101, "x"),
         C.E_UNAUTHORIZED),
        ("unsigned command", cbor.dumps([C.COMMAND, 1, cmd]), C.E_UNAUTHORIZED),
        ("tampered signature", _tamper_signature(
            messages.signed(C.COMMAND, cmd, S["operator"], 102, "host")), C.E_BAD_SIGNATURE),
        ("non-deterministic payload", _raw_signed(S["operator"], C.COMMAND, 103,
                                                  bytes.fromhex("a202010101")), C.E_BAD_CBOR),
        ("payload not a map", _raw_signed(S["operator"], C.COMMAND, 104, cbor.dumps([1])),
         C.E_BAD_REQUEST),
        ("missing seq", _raw_signed(S["operator"], C.COMMAND, None, cbor.dumps({})),
         C.E_BAD_CBOR),
        ("oversize body", messages.signed(C.COMMAND, {C.K_DATA: b"x" * 5000}, S["operator"],
                                          105, "host"), C.E_TOO_LARGE),
    ]
    out = []
    for name, body, code in cases:
        out.append({"name": name, "hex": body.hex(), "error": code})
    return {"keyring": ring, "last_seq": {"operator": 99}, "cases": out}


def _tamper_signature(body):
    item = cbor.loads(body)
    prot, unprot, payload, sig = item.value
    return cbor.dumps(Tag(18, [prot, unprot, payload, sig[:10] + bytes([sig[10] ^ 0x80]) +
                               sig[11:]]))


def _raw_signed(signer, msg_type, seq, payload_bytes):
    header = {C.HDR_TYPE: msg_type, C.HDR_SENDER: "host"}
    if seq is not None:
        header[C.HDR_SEQ] = seq
    return cose.sign1(payload_bytes, signer, header)


def framing_vectors():
    bodies = [b"\x01", b"\x00", b"\x00\x00", b"\x03\x10\x00\x03", bytes(range(256)),
              bytes(254 * [1]), bytes(255 * [1]) + b"\x00", b"\xa0",
              bytes.fromhex(message_vectors()["cases"][0]["hex"])]
    valid = [{"body": b.hex(), "wire": framing.encode_frame(b).hex()} for b in bodies]
    good = framing.encode_frame(b"\xa1\x01\x02")
    inner = good[1:-1]
    corrupt_crc = bytearray(inner)
    corrupt_crc[1] ^= 0x01
    invalid = [
        {"name": "bad crc", "wire": (b"\x00" + bytes(corrupt_crc) + b"\x00").hex(),
         "code": C.E_BAD_CRC},
        {"name": "truncated frame (COBS block cut short)",
         "wire": (b"\x00" + inner[:-2] + b"\x00").hex(), "code": C.E_BAD_FRAME},
        {"name": "bad escape", "wire": "00" + "10ff" + inner.hex() + "00", "code": C.E_BAD_FRAME},
        {"name": "cobs overrun", "wire": "00" + "ff0101" + "00", "code": C.E_BAD_FRAME},
        {"name": "oversize", "wire": "00" + "01" * 2000 + "00", "code": C.E_TOO_LARGE},
    ]
    invalid.append(_cut_crc())
    for v in invalid:  # the vectors must agree with the host decoder
        out = framing.FrameDecoder(1024).feed(bytes.fromhex(v["wire"]))
        assert len(out) == 1 and getattr(out[0], "code", None) == v["code"], (v["name"], out)
    stream = (b"MPY: soft reboot\r\n" + good + b"\x02garbage\xff" +
              framing.encode_frame(b"\x80") + good[: len(good) // 2])
    return {"max_frame": 1024, "valid": valid, "invalid": invalid,
            "stream": {"wire": stream.hex(), "bodies": ["a10102", "80"]}}


def _cut_crc():
    """A frame whose COBS layer is intact but whose CRC lost its last byte (bad_crc)."""
    good = b"\xa1\x01\x02"
    short = (good + binascii.crc32(good).to_bytes(4, "little"))[:-1]
    escaped = framing._cobs(short).replace(b"\x10", b"\x10\x30").replace(b"\x03", b"\x10\x23")
    return {"name": "truncated body (COBS intact, CRC short)",
            "wire": (b"\x00" + escaped + b"\x00").hex(), "code": C.E_BAD_CRC}


def generate():
    return {
        "cbor.json": cbor_vectors(),
        "keys.json": keys_section(),
        "cose.json": cose_vectors(),
        "messages.json": message_vectors(),
        "framing.json": framing_vectors(),
    }


def write(outdir):
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    for name, content in generate().items():
        (outdir / name).write_text(json.dumps(content, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {outdir / name}")


if __name__ == "__main__":
    write(sys.argv[1] if len(sys.argv) > 1 else "protocol/vectors")
