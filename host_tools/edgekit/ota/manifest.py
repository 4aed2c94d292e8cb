"""The OTA manifest (SPEC 9.1): what a bundle installs, signed by the firmware key.

In the spirit of SUIT (RFC 9019/9124) with edgekit's own encoding: one deterministic CBOR map
with K_* keys, carried as the payload of a COSE_Sign1 of type DOC_OTA_MANIFEST. The fields
are SUIT's: a sequence number (anti-rollback), the target class (board and kind names, as
devices report them in CAPS), per-file SHA-256 digests and sizes, the payload encoding, the
minimum runtime and the install policy. The device re-checks all of it (firmware/ota/);
this module is the host's builder and reader.
"""
import re

from edgekit import catalog as C
from edgekit.errors import EdgekitError
from edgekit.protocol import cbor, cose

NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$")
# At most 9 digits a part: int() of a longer run is slow or refused (Python's digit limit).
SEMVER_RE = re.compile(r"^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})$")
DEFLATE = "deflate"
DEFAULT_DEADLINE_S = 120
# SPEC 9.1: a sequence number is 1..2^63-2. 2^63-1, the top of the registry's (SQLite's) and
# every int64 tool's range, is terminal: a device that installed it could never take another
# update (anti-rollback does not wrap), so no update may carry it; the device refuses it too.
SEQ_MAX = (1 << 63) - 2
ISSUED_MAX = 253402300799   # 9999-12-31T23:59:59Z: the last second a datetime can show
ISSUER = "release"          # HDR_SENDER of a manifest: a document issuer name (SPEC 4.1)


class ManifestError(EdgekitError):
    """A manifest is malformed, unsigned or signed by a key we do not trust."""


def semver(text):
    m = SEMVER_RE.match(text) if isinstance(text, str) else None
    if not m:
        raise ManifestError(f"version {text!r} is not MAJOR.MINOR.PATCH (for example 1.4.0)")
    return tuple(int(x) for x in m.groups())


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def check_seq(seq):
    if not _is_int(seq) or not 1 <= seq <= SEQ_MAX:
        raise ManifestError(f"sequence number {seq!r} is outside 1..{SEQ_MAX} (2^63-2; "
                            "2^63-1 is terminal: no update could follow it); it must grow "
                            "with every release (anti-rollback)")
    return seq


def check_name(name):
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ManifestError(f"file name {name!r}: use 1..32 letters, digits, '_', '.' or '-' "
                            "(no folders), not starting with '.' or '-'")
    return name


def build(seq, version, board, kind, runtime, files, issued, deadline=DEFAULT_DEADLINE_S):
    """The manifest map. `files`: dicts with name, size, digest (32 bytes), and optionally
    encoding and xsize (transfer size) when the payload is compressed."""
    check_seq(seq)
    semver(version)
    semver(runtime)
    if not 1 <= len(files) <= C.OTA_FILES_MAX:
        raise ManifestError(f"a bundle holds 1..{C.OTA_FILES_MAX} files, not {len(files)}")
    if not isinstance(deadline, int) or not 10 <= deadline <= 86400:
        raise ManifestError(f"trial deadline {deadline!r} s: use 10..86400 seconds")
    entries, seen = [], set()
    for f in sorted(files, key=lambda f: f["name"]):
        name = check_name(f["name"])
        if name in seen:
            raise ManifestError(f"file {name} is listed twice")
        seen.add(name)
        entry = {C.K_NAME: name, C.K_SIZE: f["size"], C.K_DIGEST: bytes(f["digest"])}
        if f.get("encoding"):
            entry[C.K_ENCODING] = f["encoding"]
            entry[C.K_XSIZE] = f["xsize"]
        entries.append(entry)
    return {C.K_OTA_SEQ: seq, C.K_VERSION: version, C.K_BOARD: board, C.K_KIND: kind,
            C.K_RUNTIME: runtime, C.K_POLICY: C.OTA_POLICY_TEST_CONFIRM,
            C.K_DEADLINE: deadline, C.K_ISSUED: int(issued),
            C.K_SIZE: sum(f["size"] for f in files), C.K_FILES: entries}


def encode(manifest: dict) -> bytes:
    return cbor.dumps(manifest)


def decode(payload: bytes) -> dict:
    """Parse and check a manifest payload; ManifestError names the first problem. Every field
    the host reads later (inspect, push, flash) is checked here, so no later step meets a
    wrong type."""
    try:
        m = cbor.loads(payload)
    except cbor.CBORError as exc:
        raise ManifestError(f"manifest is not deterministic CBOR: {exc}") from None
    if not isinstance(m, dict):
        raise ManifestError("manifest must be a map")
    for key, kind, label in ((C.K_OTA_SEQ, int, "sequence"), (C.K_VERSION, str, "version"),
                             (C.K_BOARD, str, "board"), (C.K_KIND, str, "kind"),
                             (C.K_RUNTIME, str, "runtime"), (C.K_FILES, list, "files"),
                             (C.K_POLICY, str, "policy"), (C.K_DEADLINE, int, "deadline"),
                             (C.K_SIZE, int, "size")):
        value = m.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ManifestError(f"manifest field {label} is missing or not {kind.__name__}")
    if m[C.K_POLICY] != C.OTA_POLICY_TEST_CONFIRM:
        raise ManifestError(f"install policy {m[C.K_POLICY]!r} is unknown; edgekit devices "
                            f"install with {C.OTA_POLICY_TEST_CONFIRM!r}")
    issued = m.get(C.K_ISSUED, 0)
    if not _is_int(issued) or not 0 <= issued <= ISSUED_MAX:
        raise ManifestError(f"manifest field issued {issued!r} is not a unix time in "
                            f"0..{ISSUED_MAX}")
    if not 1 <= len(m[C.K_FILES]) <= C.OTA_FILES_MAX:
        raise ManifestError(f"a bundle holds 1..{C.OTA_FILES_MAX} files, not "
                            f"{len(m[C.K_FILES])}")
    files = [_entry(f) for f in m[C.K_FILES]]
    rebuilt = build(m[C.K_OTA_SEQ], m[C.K_VERSION], m[C.K_BOARD], m[C.K_KIND],
                    m[C.K_RUNTIME], files, issued, m[C.K_DEADLINE])
    if [f[C.K_NAME] for f in rebuilt[C.K_FILES]] != [f[C.K_NAME] for f in m[C.K_FILES]]:
        raise ManifestError("manifest files must be sorted by name")
    if m[C.K_SIZE] != rebuilt[C.K_SIZE]:
        raise ManifestError(f"manifest size {m[C.K_SIZE]} is not the sum of its files' "
                            f"sizes ({rebuilt[C.K_SIZE]})")
    return m


def _entry(f):
    """One manifest file entry, checked, as the dict build() takes."""
    if not isinstance(f, dict):
        raise ManifestError("every manifest file entry must be a map")
    name = check_name(f.get(C.K_NAME))
    size, digest = f.get(C.K_SIZE), f.get(C.K_DIGEST)
    encoding, xsize = f.get(C.K_ENCODING), f.get(C.K_XSIZE)
    if not _is_int(size) or size < 0:
        raise ManifestError(f"file {name}: size must be a non-negative integer")
    if not isinstance(digest, bytes) or len(digest) != 32:
        raise ManifestError(f"file {name}: digest must be 32 bytes of SHA-256")
    if encoding not in (None, DEFLATE):
        raise ManifestError(f"file {name}: encoding {encoding!r} is unknown")
    if encoding and (not _is_int(xsize) or xsize < 1):
        raise ManifestError(f"file {name}: a compressed file needs its transfer size")
    if not encoding and C.K_XSIZE in f:
        raise ManifestError(f"file {name}: a transfer size without an encoding")
    return dict(name=name, size=size, digest=digest, encoding=encoding, xsize=xsize)


def files(m: dict) -> list:
    """File entries as dicts with their place in the transfer stream (SPEC 9.3)."""
    out, at = [], 0
    for i, f in enumerate(m[C.K_FILES]):
        xsize = f[C.K_XSIZE] if f.get(C.K_ENCODING) else f[C.K_SIZE]
        out.append({"index": i, "name": f[C.K_NAME], "size": f[C.K_SIZE],
                    "digest": f[C.K_DIGEST], "encoding": f.get(C.K_ENCODING),
                    "xsize": xsize, "start": at, "end": at + xsize})
        at += xsize
    return out


def stream_size(m: dict) -> int:
    return sum(f[C.K_XSIZE] if f.get(C.K_ENCODING) else f[C.K_SIZE] for f in m[C.K_FILES])


def sign(payload: bytes, signer, seq: int) -> bytes:
    """COSE_Sign1 of type DOC_OTA_MANIFEST over the manifest payload."""
    header = {C.HDR_TYPE: C.DOC_OTA_MANIFEST, C.HDR_SEQ: seq, C.HDR_SENDER: ISSUER}
    return cose.sign1(payload, signer, header)


def open_signed(signed: bytes, trusted=None):
    """(manifest, payload bytes, kid) of a signed manifest. With `trusted` (a list of firmware
    public keys) the signature must verify under one of them; without, it is only parsed."""
    try:
        sign1 = cose.decode_sign1(signed)
    except cose.CoseError as exc:
        raise ManifestError(f"the signed manifest is not a COSE_Sign1: {exc}") from None
    if sign1.protected.get(C.HDR_TYPE) != C.DOC_OTA_MANIFEST:
        raise ManifestError("the signed document is not an OTA manifest (wrong type)")
    if trusted is not None:
        keys = {cose.kid_of(k): k for k in trusted}
        key = keys.get(sign1.kid)
        if key is None:
            raise ManifestError(f"manifest signed by key {sign1.kid.hex()}, which is not a "
                                "trusted firmware key (see `edgekit keys list`)")
        try:
            sign1.verify(key)
        except cose.CoseError:
            raise ManifestError("manifest signature does not verify: the bundle was altered "
                                "after signing; rebuild and sign it again") from None
    return decode(sign1.payload), sign1.payload, sign1.kid
