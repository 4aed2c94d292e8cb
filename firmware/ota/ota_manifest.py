# The OTA manifest's schema on the device (SPEC 9.1): every field checked before anything
# is written; a violation is refused with bad_request naming the field.
import catalog as C
from agent import refuse

_NAME_OK = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
# SPEC 9.1: sequence numbers are 1..2^63-2. 2^63-1 is terminal (once installed, no update
# could ever follow it: anti-rollback does not wrap) and anything larger is outside the
# registry's 63-bit range, so both are refused before anything is written. A big int on
# the device, made once at import (not a const: const() wants a small int on 32-bit ports).
_SEQ_MAX = 0x7FFFFFFFFFFFFFFE


def version(text):
    parts = text.split(".") if isinstance(text, str) else ()
    if len(parts) != 3:
        return None
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        return None


def _bad(text):
    refuse(C.E_BAD_REQUEST, "manifest: " + text)


def manifest_files(m):
    """Schema of SPEC 9.1 -> [(name, size, digest, encoding, xsize)]; refuses bad_request."""
    if not isinstance(m, dict):
        _bad("not a map")
    seq = m.get(C.K_OTA_SEQ)
    if not isinstance(seq, int):
        _bad("sequence number missing")
    if not 1 <= seq <= _SEQ_MAX:
        _bad("sequence number %d is outside 1..%d (2^63-1 is terminal)" % (seq, _SEQ_MAX))
    for k in (C.K_VERSION, C.K_BOARD, C.K_KIND, C.K_RUNTIME):
        if not isinstance(m.get(k), str):
            _bad("field %d missing" % k)
    if version(m[C.K_VERSION]) is None or version(m[C.K_RUNTIME]) is None:
        _bad("version and runtime must be MAJOR.MINOR.PATCH")
    if m.get(C.K_POLICY) != C.OTA_POLICY_TEST_CONFIRM:
        _bad("install policy %r unknown" % (m.get(C.K_POLICY),))
    dl = m.get(C.K_DEADLINE)
    if not isinstance(dl, int) or not 10 <= dl <= 86400:
        _bad("trial deadline must be 10..86400 s")
    entries = m.get(C.K_FILES)
    if not isinstance(entries, list) or not 1 <= len(entries) <= C.OTA_FILES_MAX:
        _bad("1..%d files" % C.OTA_FILES_MAX)
    # The tuples replace the entries' maps in the decoded list itself: a new list grows by
    # reallocation, and its 512-byte block was what a fragmented heap (32 KB free, no such
    # block) could not give mid-offer. The caller holds `m` only to read its other fields.
    prev = ""
    for i in range(len(entries)):
        f = entries[i]
        if not isinstance(f, dict):
            _bad("file entry not a map")
        name = f.get(C.K_NAME)
        size = f.get(C.K_SIZE)
        digest = f.get(C.K_DIGEST)
        enc = f.get(C.K_ENCODING)
        # strip() leaves nothing iff every character is allowed. Indexing or iterating the
        # str instead interns each character as a qstr, and a new qstr pool (1.3 KB) was the
        # block a fragmented heap could not give in the middle of an offer.
        if not isinstance(name, str) or not 1 <= len(name) <= 32 or name.startswith(".") \
                or name.startswith("-") or name.strip(_NAME_OK):
            _bad("file name %r" % (name,))
        if name <= prev:
            _bad("file names must be unique and sorted")
        prev = name
        if not isinstance(size, int) or size < 0:      # too large: no_space, later
            _bad("file %s: size" % name)
        if not isinstance(digest, bytes) or len(digest) != 32:
            _bad("file %s: digest must be 32 bytes" % name)
        xsize = size
        if enc is not None:
            xsize = f.get(C.K_XSIZE)
            if enc != "deflate" or not isinstance(xsize, int) or xsize < 1:
                _bad("file %s: encoding" % name)
        entries[i] = (name, size, digest, enc, xsize)
    return entries


# -- the signed manifest, verified where it lies ---------------------------------------------
# A manifest is about 2 KB. Decoding the COSE_Sign1 copies its payload and building the
# Sig_structure (RFC 9052 4.4) copies it again: two more 2 KB blocks, which a fragmented
# 110 KB heap often cannot give (measured on the emulated ESP32: 64 KB free, no 2.2 KB
# block). So the manifest is received into one preallocated buffer with HEAD spare bytes in
# front, and the Sig_structure's prefix is written in place just before the payload.
HEAD = 16
_SIG1 = b"\x84\x6aSignature1"       # array(4), text(10) "Signature1"


def _head(b, p, major):
    ib = b[p]
    if ib >> 5 != major:
        raise ValueError("unexpected CBOR type")
    ai = ib & 31
    if ai < 24:
        return ai, p + 1
    if ai == 24:
        return b[p + 1], p + 2
    if ai == 25:
        return (b[p + 1] << 8) | b[p + 2], p + 3
    raise ValueError("length out of range")


def _bstr_head(n):
    if n < 24:
        return bytes((0x40 | n,))
    if n < 256:
        return bytes((0x58, n))
    return bytes((0x59, n >> 8, n & 255))


def split_sign1(buf, size):
    """Offsets of a COSE_Sign1 at buf[HEAD:HEAD+size] (tagged or not, empty unprotected
    map): (protected start, protected end, payload start, payload end, signature start)."""
    end = HEAD + size
    p = HEAD
    if buf[p] == 0xD2:                  # tag 18
        p += 1
    if buf[p] != 0x84:
        raise ValueError("not a 4-element COSE_Sign1")
    n, p = _head(buf, p + 1, 2)
    ps, pe = p, p + n
    if pe >= end or buf[pe] != 0xA0:
        raise ValueError("the unprotected header must be an empty map")
    n, p = _head(buf, pe + 1, 2)
    p0, p1 = p, p + n
    if p1 >= end:
        raise ValueError("truncated")
    n, p = _head(buf, p1, 2)
    if n != 64 or p + 64 != end:
        raise ValueError("the signature must be 64 bytes and end the manifest")
    return ps, pe, p0, p1, p


def sig_structure_in_place(buf, ps, pe):
    """Overwrite the bytes in front of the payload's head (whose bytes the Sig_structure
    repeats unchanged) with the Sig_structure's prefix; return where it starts. The message
    to verify is then buf[start:payload end]. The protected header must be read first."""
    protected = bytes(buf[ps:pe])
    prefix = _SIG1 + _bstr_head(len(protected)) + protected + b"\x40"
    start = pe + 1 - len(prefix)        # pe + 1: the payload's head, after the empty map
    if start < 0:
        raise ValueError("no room for the Sig_structure")
    buf[start:pe + 1] = prefix
    return start
