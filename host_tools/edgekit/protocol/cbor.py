"""Deterministic CBOR (RFC 8949 section 4.2.1) and the strict decoder of SPEC section 3, on cbor2.

cbor2 does every head, string and float. Two things it does not do the way the spec needs:
- `canonical=True` sorts map keys length-first (RFC 7049); RFC 8949 sorts bytewise by the
  keys' encodings. We hand cbor2 maps as an `_OrderedMap` it does not know, and its
  `default` hook writes the map head with cbor2's own `encode_length` and the pairs in
  bytewise order.
- cbor2 accepts non-deterministic input. The strict decoder decodes, checks the data model
  (types, 64-bit ints, tag 18 only, depth), then re-encodes and requires the same bytes:
  that one comparison rejects indefinite lengths, long heads, unsorted or duplicate keys,
  non-minimal floats and trailing bytes.

cbor2 5.9's C encoder also misses float16 for |x| in [32768, 65504] (its half-float packer
overflows on exponent 15 and it falls back to float32; cbor2 issue #157), so floats go through
`_minimal_float`, the same shortest-width test cbor2's pure-Python encoder makes.
"""
import math
import struct

import cbor2

from edgekit import catalog

Tag = cbor2.CBORTag
_INT_MIN, _INT_MAX = -(1 << 64), (1 << 64) - 1


class CBORError(ValueError):
    """Input is not CBOR this protocol accepts; `code` is the catalog error code."""

    def __init__(self, message, code=catalog.E_BAD_CBOR):
        super().__init__(message)
        self.code = code


class _Float:
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


def _minimal_float(value: float) -> bytes:
    """The shortest of float16/32/64 that keeps `value` (RFC 8949 4.2.1); NaN as f9 7e00."""
    if math.isnan(value):
        return b"\xf9\x7e\x00"
    for head, fmt in ((b"\xf9", ">e"), (b"\xfa", ">f")):
        try:
            packed = struct.pack(fmt, value)
        except OverflowError:
            continue
        if struct.unpack(fmt, packed)[0] == value:
            return head + packed
    return b"\xfb" + struct.pack(">d", value)


class _OrderedMap:
    __slots__ = ("pairs",)

    def __init__(self, pairs):
        self.pairs = pairs


def _encode_ordered_map(encoder, value):
    if isinstance(value, _Float):
        encoder.write(_minimal_float(value.value))
        return
    if not isinstance(value, _OrderedMap):
        raise CBORError(f"cannot encode {type(value).__name__} in edgekit CBOR")
    encoder.encode_length(5, len(value.pairs))
    for key, item in value.pairs:
        encoder.encode(key)
        encoder.encode(item)


def _prepare(obj, depth=1):
    """Copy `obj` into what cbor2 encodes as RFC 8949 deterministic CBOR.

    `depth` counts as the decoder does (the top-level item is 1), so anything this encodes
    the strict decoder accepts."""
    if depth > catalog.MAX_DEPTH:
        raise CBORError(f"nesting deeper than {catalog.MAX_DEPTH}", catalog.E_TOO_DEEP)
    if isinstance(obj, dict):
        pairs = []
        for key, value in obj.items():
            prepared_key = _prepare(key, depth + 1)
            encoded_key = cbor2.dumps(prepared_key, canonical=True, default=_encode_ordered_map)
            pairs.append((encoded_key, prepared_key, _prepare(value, depth + 1)))
        pairs.sort(key=lambda p: p[0])
        for before, after in zip(pairs, pairs[1:]):
            if before[0] == after[0]:
                raise CBORError(f"duplicate map key {before[1]!r}")
        return _OrderedMap([(k, v) for _, k, v in pairs])
    if isinstance(obj, (list, tuple)):
        return [_prepare(item, depth + 1) for item in obj]
    if isinstance(obj, Tag):
        return Tag(obj.tag, _prepare(obj.value, depth + 1))
    if isinstance(obj, float):
        return _Float(obj)
    if isinstance(obj, bool) or obj is None or isinstance(obj, (str, bytes)):
        return obj
    if isinstance(obj, int):
        if not _INT_MIN <= obj <= _INT_MAX:
            raise CBORError(f"integer {obj} outside the 64-bit range of the protocol")
        return obj
    if isinstance(obj, (bytearray, memoryview)):
        return bytes(obj)
    raise CBORError(f"cannot encode {type(obj).__name__} in edgekit CBOR")


def dumps(obj) -> bytes:
    """Deterministic encoding (RFC 8949 4.2.1): the bytes the device encoder also produces."""
    return cbor2.dumps(_prepare(obj), canonical=True, default=_encode_ordered_map)


def _check_model(obj, top_level):
    """Iteratively check the data model; raise CBORError on anything SPEC section 3 forbids."""
    stack = [(obj, 1, top_level)]
    while stack:
        value, depth, at_top = stack.pop()
        if depth > catalog.MAX_DEPTH:
            raise CBORError(f"nesting deeper than {catalog.MAX_DEPTH}", catalog.E_TOO_DEEP)
        if isinstance(value, (list, tuple)):
            stack.extend((item, depth + 1, False) for item in value)
        elif isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, (int, str, bytes)) or isinstance(key, bool):
                    raise CBORError("map keys must be integers, text or byte strings")
                stack.append((key, depth + 1, False))
                stack.append((item, depth + 1, False))
        elif isinstance(value, Tag):
            if value.tag != catalog.TAG_COSE_SIGN1 or not at_top:
                raise CBORError(f"tag {value.tag} is not allowed here")
            stack.append((value.value, depth + 1, False))
        elif isinstance(value, bool) or value is None or isinstance(value, (str, bytes, float)):
            pass
        elif isinstance(value, int):
            if not _INT_MIN <= value <= _INT_MAX:
                raise CBORError("bignum (tag 2/3) is not allowed")
        else:
            raise CBORError(f"{type(value).__name__} is not in the protocol's data model")


def _thaw(obj):
    """cbor2 turns array map keys into tuples; give callers lists everywhere but in keys."""
    if isinstance(obj, dict):
        return {k: _thaw(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_thaw(v) for v in obj]
    if isinstance(obj, Tag):
        return Tag(obj.tag, _thaw(obj.value))
    return obj


def loads(data, max_len=None):
    """Strictly decode one deterministic CBOR item that is all of `data`."""
    data = bytes(data)
    if max_len is not None and len(data) > max_len:
        raise CBORError(f"{len(data)} bytes exceed the limit of {max_len}", catalog.E_TOO_LARGE)
    if not data:
        raise CBORError("empty input")
    try:
        obj = cbor2.loads(data)
    except cbor2.CBORDecodeError as exc:
        if "nesting depth" in str(exc):
            raise CBORError(f"nesting deeper than {catalog.MAX_DEPTH}",
                            catalog.E_TOO_DEEP) from None
        raise CBORError(f"not well-formed CBOR: {exc}") from None
    except (RecursionError, ValueError, TypeError, OverflowError, MemoryError) as exc:
        raise CBORError(f"not well-formed CBOR: {exc}") from None
    _check_model(obj, top_level=True)
    if dumps(obj) != data:
        raise CBORError("not deterministic CBOR (RFC 8949 4.2.1): indefinite length, long head, "
                        "unsorted or duplicate map keys, non-shortest float, or trailing bytes")
    return _thaw(obj)
