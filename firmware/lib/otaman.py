# The OTA manifest's schema on the device (SPEC 9.1): every field checked before anything
# is written; a violation is refused with bad_request naming the field.
import catalog as C
from agent import refuse

_NAME_OK = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"


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
    if not isinstance(seq, int) or seq < 1:
        _bad("sequence number missing")
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
    out = []
    prev = ""
    for f in entries:
        if not isinstance(f, dict):
            _bad("file entry not a map")
        name = f.get(C.K_NAME)
        size = f.get(C.K_SIZE)
        digest = f.get(C.K_DIGEST)
        enc = f.get(C.K_ENCODING)
        if not isinstance(name, str) or not 1 <= len(name) <= 32 or name[0] in ".-" \
                or any(c not in _NAME_OK for c in name):
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
        out.append((name, size, digest, enc, xsize))
    return out
