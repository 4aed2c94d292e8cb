# Device CBOR codec: the deterministic encoding and strict decoding of protocol/SPEC.md section 3
# (RFC 8949 section 4.2.1). Same bytes as the host's edgekit.protocol.cbor, proved by
# tests/host/test_cbor_equivalence.py.
#
# Written for the MicroPython VM: dispatch on type(), append into one bytearray, struct for
# multi-byte heads, no per-byte loops except UTF-8 validation of non-ASCII text. Floats are
# handled on their IEEE bit patterns with small ints so the same code is exact on builds with
# single-precision floats (ESP32) and on builds whose struct lacks 'e' (half floats). Such a
# build decodes a float64 to the nearest float32: the only value change the device makes.
import struct

from catalog import E_BAD_CBOR, E_TOO_DEEP, E_TOO_LARGE, MAX_DEPTH, TAG_COSE_SIGN1

try:
    from micropython import const
except ImportError:  # CPython, for reading the module in tools
    def const(x):
        return x

_pack = struct.pack
_unpack = struct.unpack
_unpack_from = struct.unpack_from
_MAX_U64 = 0xFFFFFFFFFFFFFFFF
_TAG18 = const(0xD2)
# Single-precision builds cannot hold a float64, so the float64 candidate never applies there.
_DOUBLE = 1.0 + 2.0 ** -30 != 1.0
_NAN = float("nan")
# Without unicode strings (a build option) str() neither checks UTF-8 nor counts characters,
# so every text must go through _utf8_strict.
_UNICODE = len("\u00e9") == 1

# Builtins bound to module globals: in this VM a builtin name costs several times a global
# one (measured on the unix port: this alone took the 20-record SenML encode+decode from
# about 3x to under 2x the built-in json; bench/bench_cbor.py prints the ratio).
_type, _len, _sorted, _isinstance = type, len, sorted, isinstance
_bytes, _str, _int, _float = bytes, str, int, float
_dict, _list, _tuple, _bytearray, _memoryview = dict, list, tuple, bytearray, memoryview


class CBORError(ValueError):
    """Input or value outside what SPEC section 3 allows; `code` is the catalog error code."""

    def __init__(self, message, code=E_BAD_CBOR):
        super().__init__(message)
        self.code = code


class Tag:
    """A CBOR tag; the protocol allows only tag 18 (COSE_Sign1) at the top level."""

    def __init__(self, tag, value):
        self.tag = tag
        self.value = value

    def __eq__(self, other):
        return _isinstance(other, Tag) and other.tag == self.tag and other.value == self.value

    def __ne__(self, other):
        return not self.__eq__(other)

    def __repr__(self):
        return "Tag(%d, %r)" % (self.tag, self.value)


class Raw:
    """Bytes that already are one deterministic CBOR item, spliced in as they are. Lets a
    device answer with many stored records while holding only one decoded at a time (the
    caller encoded each with dumps, so the result stays deterministic)."""
    __slots__ = ("data",)

    def __init__(self, data):
        self.data = data


# ---------------------------------------------------------------------------------------------
# Floats on bit patterns

def _f32_to_f16(hi, lo):
    """Half-float bits for the float32 bits (hi, lo 16-bit halves), or -1 if not exact.

    NaN must be handled by the caller (it is always written as the canonical f9 7e00)."""
    sign = hi & 0x8000
    e = (hi >> 7) & 0xFF
    if e == 0xFF:
        return sign | 0x7C00
    if e == 0:
        # float32 zero, or a float32 subnormal (far below the float16 range)
        return sign if (hi & 0x7F) == 0 and lo == 0 else -1
    e -= 127
    if -14 <= e <= 15:
        if lo & 0x1FFF:
            return -1
        return sign | ((e + 15) << 10) | ((hi & 0x7F) << 3) | (lo >> 13)
    if -24 <= e < -14:
        # float16 subnormal: value = m * 2**-24 with the implicit leading 1 shifted down
        m = 0x800000 | ((hi & 0x7F) << 16) | lo
        s = -1 - e
        if m & ((1 << s) - 1):
            return -1
        return sign | (m >> s)
    return -1


def _f16_to_float(h):
    e = (h >> 10) & 0x1F
    m = h & 0x3FF
    if e == 0:
        v = m * 5.960464477539063e-08  # 2**-24: exact, m has at most 10 bits
        return -v if h & 0x8000 else v
    if e == 0x1F:
        e = 0xFF - 112  # inf (NaN never reaches here: the decoder takes only f9 7e00)
    # float32 bits as two little-endian halves: low half first
    return _unpack("<f", _pack("<HH", (m & 7) << 13,
                               (h & 0x8000) | ((e + 112) << 7) | (m >> 3)))[0]


def _f64_fits_f32(w0, w1, w2, w3):
    """True if the float64 given as four 16-bit words (big-endian) is exact as a float32."""
    e = (w0 >> 4) & 0x7FF
    if e == 0x7FF:
        return True  # inf, and NaN (which must be f9 7e00)
    if e == 0:
        return w0 & 0xF == 0 and w1 == 0 and w2 == 0 and w3 == 0  # zero; subnormals do not fit
    e -= 1023
    if -126 <= e <= 127:
        return w3 == 0 and w2 & 0x1FFF == 0
    if -149 <= e < -126:
        m = ((w0 & 0xF | 0x10) << 48) | (w1 << 32) | (w2 << 16) | w3
        return m & ((1 << (-97 - e)) - 1) == 0
    return False


def _enc_float(out, x):
    if x != x:
        out += b"\xf9\x7e\x00"
        return
    f = _pack(">f", x)
    if _DOUBLE and _unpack(">f", f)[0] != x:
        out.append(0xFB)
        out += _pack(">d", x)
        return
    hi, lo = _unpack_from(">HH", f)
    h = _f32_to_f16(hi, lo)
    if h < 0:
        out.append(0xFA)
        out += f
    else:
        out.append(0xF9)
        out += _pack(">H", h)


# ---------------------------------------------------------------------------------------------
# Encoder

def _head(out, mt, n):
    if n < 24:
        out.append(mt | n)
    elif n < 0x100:
        out.append(mt | 24)
        out.append(n)
    elif n < 0x10000:
        out += _pack(">BH", mt | 25, n)
    elif n < 0x100000000:
        out += _pack(">BI", mt | 26, n)
    elif n <= _MAX_U64:
        out += _pack(">BQ", mt | 27, n)
    else:
        raise CBORError("integer outside the 64-bit range of the protocol: use bytes for it")


def _enc_int(out, x):
    if x >= 0:
        if x < 24:
            out.append(x)
        else:
            _head(out, 0x00, x)
    else:
        x = -1 - x
        if x < 24:
            out.append(0x20 | x)
        else:
            _head(out, 0x20, x)


def _too_deep():
    return CBORError("nesting deeper than %d levels: flatten the value" % MAX_DEPTH, E_TOO_DEEP)


def _key_bytes(k, depth):
    t = _type(k)
    if t is _str:
        b = k.encode()
        n = _len(b)
        if n < 24:
            return _bytes((0x60 | n,)) + b
    elif t is not _int and t is not _bytes:
        # SPEC 3: keys are int, text or bytes; the decoder refuses the others, so the
        # encoder must not produce them.
        raise CBORError("map key %r: use int, text or bytes keys" % (k,))
    kb = _bytearray()
    _enc(kb, k, depth)
    return _bytes(kb)


def _enc_map(out, x, depth):
    """Encode dict `x` (itself at `depth`) with keys in deterministic order."""
    n = _len(x)
    if n < 24:
        out.append(0xA0 | n)
    else:
        _head(out, 0xA0, n)
    if not n:
        return
    if depth >= MAX_DEPTH:
        raise _too_deep()
    depth += 1
    neg = 0
    for k in x:
        if _type(k) is not _int:
            neg = -1
            break
        if k < 0:
            neg += 1
    if neg >= 0:
        # All-int keys: the deterministic order of their encodings is the uints ascending,
        # then the negatives descending (-1 = 0x20 before -2 = 0x21).
        ks = _sorted(x)
        i = neg
        step = 1
        for _ in range(n):
            # walk ks[neg:] up, then ks[:neg] down, without building new lists
            if i == n:
                i = neg - 1
                step = -1
            k = ks[i]
            i += step
            if 0 <= k < 24:
                out.append(k)
            elif -25 < k < 0:
                out.append(31 - k)
            else:
                _enc_int(out, k)
            _enc(out, x[k], depth)
        return
    encoded = {}
    for k in x:
        kb = _key_bytes(k, depth)
        if kb in encoded:
            raise CBORError("two map keys encode the same: %r" % (k,))
        encoded[kb] = k
    for kb in _sorted(encoded):     # RFC 8949 4.2.1: bytewise order of the encodings
        out += kb
        _enc(out, x[encoded[kb]], depth)


def _enc(out, x, depth):
    """Append the encoding of `x`, an item at nesting `depth` (the top level is 1)."""
    t = _type(x)
    if t is _int:
        if 0 <= x < 24:
            out.append(x)
        else:
            _enc_int(out, x)
    elif t is _str:
        b = x.encode()
        n = _len(b)
        if n < 24:
            out.append(0x60 | n)
        else:
            _head(out, 0x60, n)
        out += b
    elif t is _float:
        _enc_float(out, x)
    elif t is _dict:
        _enc_map(out, x, depth)
    elif t is _list or t is _tuple:
        n = _len(x)
        if n < 24:
            out.append(0x80 | n)
        else:
            _head(out, 0x80, n)
        if n:
            if depth >= MAX_DEPTH:
                raise _too_deep()
            depth += 1
            for v in x:
                _enc(out, v, depth)
    elif t is _bytes or t is _bytearray or t is _memoryview:
        _head(out, 0x40, _len(x))
        out += x
    elif x is None:
        out.append(0xF6)
    elif x is True:
        out.append(0xF5)
    elif x is False:
        out.append(0xF4)
    elif t is Raw:
        out += x.data
    elif t is Tag:
        raise CBORError("tag %r is allowed only at the top level: bstr-wrap nested documents"
                        % (x.tag,))
    elif _isinstance(x, _int):
        _enc_int(out, _int(x))
    elif _isinstance(x, _str):
        _enc(out, _str(x), depth)
    else:
        raise CBORError("cannot encode %s in edgekit CBOR: use int, float, str, bytes, list, "
                        "dict, bool or None" % (t.__name__,))


def dumps(obj):
    """Deterministic CBOR (SPEC section 3) of `obj`; a top-level Tag(18, x) is COSE_Sign1."""
    return _bytes(encode_into(_bytearray(), obj))


def encode_into(out, obj):
    """dumps() appended to the bytearray `out` (returned). Into a preallocated `out`,
    emptied with `out[:] = b""` (which keeps its capacity), nothing is reallocated."""
    if _type(obj) is Tag:
        if obj.tag != TAG_COSE_SIGN1:
            raise CBORError("tag %r is not allowed: only tag 18 (COSE_Sign1)" % (obj.tag,))
        out.append(_TAG18)
        _enc(out, obj.value, 2)
    else:
        _enc(out, obj, 1)
    return out


# ---------------------------------------------------------------------------------------------
# Decoder

def _utf8_strict(b, p, end):
    """RFC 3629 validity (no overlongs, surrogates or code points above U+10FFFF).

    MicroPython's own str() check lets those three through, so non-ASCII text is rechecked."""
    while p < end:
        c = b[p]
        if c < 0x80:
            p += 1
            continue
        if c < 0xC2:
            return False
        if c < 0xE0:
            n, lo, hi = 1, 0x80, 0xBF
        elif c < 0xF0:
            n, lo, hi = 2, (0xA0 if c == 0xE0 else 0x80), (0x9F if c == 0xED else 0xBF)
        elif c < 0xF5:
            n, lo, hi = 3, (0x90 if c == 0xF0 else 0x80), (0x8F if c == 0xF4 else 0xBF)
        else:
            return False
        if p + n >= end:
            return False
        c = b[p + 1]
        if c < lo or c > hi:
            return False
        for q in range(p + 2, p + n + 1):
            if b[q] & 0xC0 != 0x80:
                return False
        p += n + 1
    return True


class _Overrun(CBORError):
    """A declared length beyond the input; loads() turns it into too_large above max_len."""

    def __init__(self, n, left):
        super().__init__("declared length %d exceeds the %d bytes left in the input" % (n, left))
        self.length = n


def _dec(b, p, end, depth):
    """Decode the item at b[p]; return (value, next position)."""
    ib = b[p]
    p += 1
    mt = ib >> 5
    n = ib & 0x1F
    if n >= 24:
        if n == 24:
            if mt == 7:
                raise CBORError("two-byte simple value at byte %d is not in the protocol's data "
                                "model" % (p - 1))
            n = b[p]
            p += 1
            if n < 24:
                raise CBORError("non-shortest head at byte %d" % (p - 2))
        elif n == 25:
            if mt == 7:
                return _dec_f16(b, p)
            n = (b[p] << 8) | b[p + 1]
            p += 2
            if n < 0x100:
                raise CBORError("non-shortest head at byte %d" % (p - 3))
        elif n == 26:
            if mt == 7:
                return _dec_f32(b, p)
            n = _unpack_from(">I", b, p)[0]
            p += 4
            if n < 0x10000:
                raise CBORError("non-shortest head at byte %d" % (p - 5))
        elif n == 27:
            if mt == 7:
                return _dec_f64(b, p)
            n = _unpack_from(">Q", b, p)[0]
            p += 8
            if n < 0x100000000:
                raise CBORError("non-shortest head at byte %d" % (p - 9))
        elif n == 31:
            raise CBORError("indefinite length or break at byte %d: definite lengths only"
                            % (p - 1))
        else:
            raise CBORError("reserved additional information %d at byte %d" % (n, p - 1))
    if mt == 0:
        return n, p
    if mt == 3:
        q = p + n
        if q > end:
            raise _Overrun(n, end - p)
        try:
            s = _str(b[p:q], "utf-8")
        except (UnicodeError, ValueError):
            raise CBORError("invalid UTF-8 in text string at byte %d" % p)
        if (_len(s) != n or not _UNICODE) and not _utf8_strict(b, p, q):
            raise CBORError("invalid UTF-8 in text string at byte %d" % p)
        return s, q
    if mt == 5:
        if n + n > end - p:
            raise _Overrun(n + n, end - p)
        if depth >= MAX_DEPTH and n:
            raise _too_deep()
        return _dec_map(b, p, end, depth + 1, n)
    if mt == 1:
        return -1 - n, p
    if mt == 4:
        if n > end - p:
            raise _Overrun(n, end - p)
        if depth >= MAX_DEPTH and n:
            raise _too_deep()
        depth += 1
        a = [None] * n
        for i in range(n):
            a[i], p = _dec(b, p, end, depth)
        return a, p
    if mt == 2:
        q = p + n
        if q > end:
            raise _Overrun(n, end - p)
        if _view_min and n >= _view_min and _isinstance(b, _memoryview):
            return b[p:q], q
        return _bytes(b[p:q]), q
    if mt == 7:
        if n == 20:
            return False, p
        if n == 21:
            return True, p
        if n == 22:
            return None, p
        raise CBORError("simple value %d at byte %d is not in the protocol's data model"
                        % (n, p - 1))
    raise CBORError("tag %d at byte %d: only tag 18 (COSE_Sign1), only at the top level"
                    % (n, p - 1))


def _dec_map(b, p, end, depth, n):
    d = {}
    c0 = -1
    ks0 = ke0 = 0
    for _ in range(n):
        # Deterministic order and uniqueness compare the keys' encodings, which are the input
        # bytes themselves; a first byte that differs settles it without slicing.
        c = b[p]
        ks = p
        if c < 0x18 or 0x20 <= c < 0x38:
            # one-byte int key, the common case: a key with the same first byte is the same key
            if c <= c0:
                raise _bad_key_order(ks)
            k = c if c < 0x18 else 31 - c
            p += 1
        else:
            k, p = _dec(b, p, end, depth)
            if c < c0 or (c == c0 and _bytes(b[ks:p]) <= _bytes(b[ks0:ke0])):
                raise _bad_key_order(ks)
            t = _type(k)
            if t is _list or t is _dict or c >= 0xE0:   # major 7: true/false/null/floats
                raise CBORError("map key at byte %d is not an int, text or bytes: use int "
                                "or text keys"
                                % ks)
        c0 = c
        ks0 = ks
        ke0 = p
        d[k], p = _dec(b, p, end, depth)
    if _len(d) != n:
        raise CBORError("map keys that are equal in Python (1, 1.0, true): use distinct keys")
    return d, p


def _bad_key_order(at):
    return CBORError("map key at byte %d is a duplicate or out of deterministic order (RFC 8949 "
                     "4.2.1: sorted bytewise by encoding)" % at)


def _dec_f16(b, p):
    h = (b[p] << 8) | b[p + 1]
    if h & 0x7C00 == 0x7C00 and h & 0x3FF:
        if h != 0x7E00:
            raise CBORError("NaN at byte %d must be the canonical f9 7e00" % (p - 1))
        return _NAN, p + 2
    return _f16_to_float(h), p + 2


def _dec_f32(b, p):
    hi, lo = _unpack_from(">HH", b, p)
    if hi & 0x7F80 == 0x7F80 and (hi & 0x7F or lo):
        raise CBORError("NaN at byte %d must be the canonical f9 7e00" % (p - 1))
    if _f32_to_f16(hi, lo) >= 0:
        raise CBORError("float32 at byte %d is exact as float16: not the shortest form" % (p - 1))
    return _unpack_from(">f", b, p)[0], p + 4


def _dec_f64(b, p):
    w0, w1, w2, w3 = _unpack_from(">HHHH", b, p)
    if _f64_fits_f32(w0, w1, w2, w3):
        raise CBORError("float64 at byte %d is exact as float32 (or is a NaN other than f9 7e00): "
                        "not the shortest form" % (p - 1))
    return _unpack_from(">d", b, p)[0], p + 8


_view_min = 0       # loads(views=n): byte strings of n bytes or more, as views of the input


def loads(data, max_len=None, views=0):
    """Strictly decode one deterministic CBOR item that is all of `data` (SPEC section 3).

    Raises CBORError with code E_BAD_CBOR, E_TOO_DEEP, or E_TOO_LARGE when `data`, or a
    length declared in it, is above `max_len`. With `views` and a memoryview `data`, byte
    strings of at least `views` bytes come back as memoryviews of it, not copies: valid only
    while `data` is (an OTA chunk's data read from the network's receive buffer)."""
    global _view_min
    _view_min = views       # set by every call: nothing stale reaches the next one
    end = _len(data)
    if max_len is not None and end > max_len:
        raise CBORError("%d bytes exceed the limit of %d" % (end, max_len), E_TOO_LARGE)
    if end == 0:
        raise CBORError("empty input: expected one CBOR item")
    try:
        if data[0] == _TAG18:
            if end < 2:
                raise CBORError("tag 18 without content")
            v, p = _dec(data, 1, end, 2)
            v = Tag(TAG_COSE_SIGN1, v)
        else:
            v, p = _dec(data, 0, end, 1)
    except _Overrun as e:
        if max_len is not None and e.length > max_len:
            e.code = E_TOO_LARGE
        raise
    except (IndexError, ValueError) as e:
        if _isinstance(e, CBORError):
            raise
        raise CBORError("truncated input: an item runs past the end")
    if p != end:
        raise CBORError("%d bytes after the top-level item" % (end - p))
    return v
