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
import functools
import io
import math
import struct
import threading

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


@functools.lru_cache(maxsize=512)
def _key_bytes(key):
    """A map key's encoding (the sort key): the same few labels recur in every frame."""
    return cbor2.dumps(key, canonical=True, default=_encode_ordered_map)


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
            pairs.append((_key_bytes(prepared_key), prepared_key, _prepare(value, depth + 1)))
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


_MAX = catalog.MAX_DEPTH
_SCALARS = (str, bytes, bool, type(None))


def _too_deep():
    return CBORError(f"nesting deeper than {_MAX}", catalog.E_TOO_DEEP)


def _scalar(value, t, check):
    """Check a non-container child; return False when cbor2 needs the general path for it."""
    if t is int:
        if not _INT_MIN <= value <= _INT_MAX:
            raise CBORError(f"integer {value} outside the 64-bit range of the protocol")
        return True
    if t is float:
        return not 32768.0 <= abs(value) <= 65504.0     # cbor2's float16 gap
    if t in _SCALARS:
        return True
    if t is Tag:
        raise CBORError(f"tag {value.tag} is not allowed here: only tag 18 (COSE_Sign1), at "
                        "the top level")
    if check:
        raise CBORError(f"{t.__name__} is not in the protocol's data model")
    return False        # bytearray, memoryview, subclasses: the general path handles them


def head_len(n):
    """Bytes of a CBOR head carrying argument n >= 0 (the length of an int key's encoding)."""
    if n < 24:
        return 1
    if n < 256:
        return 2
    if n < 65536:
        return 3
    return 5 if n < 4294967296 else 9


def _walk(obj, top_level, check):
    """One iterative pass over `obj`, raising CBORError on anything SPEC section 3 forbids
    (an unknown type only when decoding, `check`: an encoder's bytearray or memoryview takes
    the general path). Returns True when cbor2's own canonical encoder gives the RFC 8949
    bytes: cbor2 sorts keys length-first, which is bytewise order within one major type, and
    across the two integer types too when no non-negative key's encoding is longer than any
    negative key's (all protocol maps: SenML's -3..6, the header's 1, 4, -65537..); maps
    mixing text, bytes and integer keys, and floats in cbor2's float16 gap, take the general
    path. Scalars are checked inline and only containers are pushed: this walk is most of
    the host's cost of opening a frame, so it avoids a call per item."""
    t = type(obj)
    if t is Tag:
        if obj.tag != catalog.TAG_COSE_SIGN1 or not top_level:
            raise CBORError(f"tag {obj.tag} is not allowed: only tag 18 (COSE_Sign1)")
        stack, depth0 = [obj.value], 2
    else:
        stack, depth0 = [obj], 1
    plain = True
    depths = [depth0]
    pop, push, dpop, dpush = stack.pop, stack.append, depths.pop, depths.append
    lo, hi = _INT_MIN, _INT_MAX
    while stack:
        value = pop()
        depth = dpop()
        if depth > _MAX:
            raise _too_deep()
        t = type(value)
        if t is dict:
            if not value:
                continue
            if depth >= _MAX:
                raise _too_deep()          # its keys and values would be at depth 17
            pos_max = -1                    # largest non-negative int key
            neg_min = -1                    # smallest -1-k over negative int keys (-1: none)
            other = 0                       # 4: a bytes key, 8: a text key
            for key in value:
                tk = type(key)
                if tk is int:
                    if key >= 0:
                        if key > hi:
                            raise CBORError(f"integer {key} outside the 64-bit range")
                        if key > pos_max:
                            pos_max = key
                    elif key < lo:
                        raise CBORError(f"integer {key} outside the 64-bit range")
                    elif neg_min < 0 or -1 - key < neg_min:
                        neg_min = -1 - key
                elif tk is str:
                    other |= 8
                elif tk is bytes:
                    other |= 4
                else:
                    raise CBORError("map keys must be integers, text or byte strings")
            if other:
                if other != 4 and other != 8 or pos_max >= 0 or neg_min >= 0:
                    plain = False
            elif pos_max >= 0 and neg_min >= 0 and head_len(pos_max) > head_len(neg_min):
                plain = False
            items = value.values()
        elif t is list or t is tuple:
            if not value:
                continue
            if depth >= _MAX:
                raise _too_deep()
            items = value
        else:
            if not _scalar(value, t, check):
                plain = False
            continue
        inner = depth + 1
        for item in items:
            ti = type(item)
            if ti is dict or ti is list or ti is tuple:
                push(item)
                dpush(inner)
            elif ti is int:
                if not lo <= item <= hi:
                    raise CBORError(f"integer {item} outside the 64-bit range of the protocol")
            elif ti is str or ti is bytes or ti is bool or item is None:
                pass
            elif ti is float:
                if 32768.0 <= abs(item) <= 65504.0:         # cbor2's float16 gap
                    plain = False
            elif not _scalar(item, ti, check):
                plain = False
    return plain


_local = threading.local()


def canonical_plain(obj):
    """cbor2's canonical encoding of `obj` with an encoder kept per thread: cbor2.dumps builds
    an encoder and a buffer per call, which costs more than encoding a protocol header."""
    state = getattr(_local, "encoder", None)
    if state is None:
        fp = io.BytesIO()
        state = _local.encoder = (fp, cbor2.CBOREncoder(fp, canonical=True))
    fp, encoder = state
    fp.seek(0)
    fp.truncate()
    encoder.encode(obj)
    return fp.getvalue()


def _encode(obj, plain):
    if plain:
        return canonical_plain(obj)                  # the common case, all in C
    return cbor2.dumps(_prepare(obj), canonical=True, default=_encode_ordered_map)


def dumps(obj) -> bytes:
    """Deterministic encoding (RFC 8949 4.2.1): the bytes the device encoder also produces."""
    return _encode(obj, _walk(obj, True, check=False))


def loads(data, max_len=None):
    """Strictly decode one deterministic CBOR item that is all of `data`."""
    if type(data) is not bytes:
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
    if _encode(obj, _walk(obj, True, check=True)) != data:
        raise CBORError("not deterministic CBOR (RFC 8949 4.2.1): indefinite length, long head, "
                        "unsorted or duplicate map keys, non-shortest float, or trailing bytes")
    return obj
