"""Is the key directory what keys.json says it is? (docs/keys.md, "Tamper evidence")

Two questions, asked each time a command loads the key store:

- `index_problem`: is keys.json well formed (every entry has its fields, of the right types)?
  A damaged index must stop a command with one line naming the file, not a traceback.
- `audit`: does each key match its files? The kid is SHA-256 of public_key, the `.pub` and
  `.pub.pem` files hold that same key, the key is not weak (pointcheck), no two entries share
  a key, and the private key's public half is that key. An encrypted private key can only be
  compared when a passphrase is given; otherwise its check says "locked". And the current
  epoch's KEY_EPOCH file, signed by the fleet key, trusts exactly the keys keys.json lists.

Why: editing `public_key` in keys.json (no passphrase needed) used to go unnoticed, and
provisioning handed the edited key to devices as a trust anchor.
"""
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (Ed25519PrivateKey,
                                                               Ed25519PublicKey)

from edgekit.keys import pointcheck

_HEX16 = re.compile(r"[0-9a-f]{16}\Z")
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
SUFFIXES = (".pub", ".pub.pem", ".key.pem")


def _positive_int(value):
    return type(value) is int and value >= 1   # bool is an int subclass: not an epoch


def _fields(roles, statuses):
    """(field, test, what it must be) for every field an index entry needs."""
    return (
        ("role", lambda v: isinstance(v, str) and v in roles, "one of " + ", ".join(roles)),
        ("kid", lambda v: isinstance(v, str) and _HEX16.match(v), "16 lowercase hex digits"),
        ("status", lambda v: isinstance(v, str) and v in statuses,
         "one of " + ", ".join(statuses)),
        ("created", lambda v: isinstance(v, str), "a date string"),
        ("epoch", _positive_int, "a positive integer"),
        ("public_key", lambda v: isinstance(v, str) and _HEX64.match(v),
         "64 lowercase hex digits"),
    )


def index_problem(index, roles, statuses):
    """What is wrong with the shape of a parsed keys.json, or None."""
    if not isinstance(index, dict):
        return "its top level is not a JSON object"
    epoch = index.get("epoch")
    if not _positive_int(epoch):
        return "'epoch' is not a positive integer"
    keys = index.get("keys")
    if not isinstance(keys, list) or not keys:
        return "'keys' is not a non-empty list"
    fields = _fields(roles, statuses)
    kids = set()
    for i, entry in enumerate(keys):
        where = f"keys[{i}]"
        if not isinstance(entry, dict):
            return f"{where} is not an object"
        for name, test, want in fields:
            if name not in entry:
                return f"{where} has no {name!r}"
            if not test(entry[name]):
                return f"{where}.{name} is not {want}"
        if "changed" in entry and not isinstance(entry["changed"], str):
            return f"{where}.changed is not a date string"
        if entry["epoch"] > epoch:
            return f"{where}.epoch {entry['epoch']} is above the index's epoch {epoch}"
        if entry["kid"] in kids:
            return f"key id {entry['kid']} appears twice"
        kids.add(entry["kid"])
    for role in roles:
        current = sum(1 for e in keys if e["role"] == role and e["status"] == "current")
        if current != 1:
            return f"{current} current {role} keys instead of one"
    return None


@dataclass(frozen=True)
class Check:
    """One key's audit: `problem` (None when fine) found in `file`; `private` says how far
    the private key was compared: "matches", "locked" (encrypted, no passphrase given) or
    "not compared" (an earlier problem stopped the check)."""
    problem: str | None
    file: Path
    private: str


def _read(path: Path):
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _public_pem_key(data: bytes):
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None
    if not isinstance(key, Ed25519PublicKey):
        return None
    return key.public_bytes_raw()


def _private_half(data: bytes, passphrase):
    """(public key bytes or None, how it was read); None with a reason when unreadable."""
    encrypted = b"ENCRYPTED" in data.split(b"\n", 1)[0]
    if encrypted and not passphrase:
        return None, "locked"
    try:
        key = serialization.load_pem_private_key(
            data, password=passphrase.encode("utf-8") if encrypted else None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        what = "cannot be decrypted with this passphrase" if encrypted else \
            "is not a readable private key"
        return None, what
    if not isinstance(key, Ed25519PrivateKey):
        return None, "is not an Ed25519 private key"
    return key.public_key().public_bytes_raw(), "matches"


def audit_entry(keydir: Path, entry: dict, passphrase=None, others=()) -> Check:
    """Check one index entry against keys.json's other entries (`others`) and its files."""
    index_file = keydir / "keys.json"
    pub = bytes.fromhex(entry["public_key"])
    reason = pointcheck.problem(pub)
    if reason:
        return Check(f"its public_key is unusable: {reason}", index_file, "not compared")
    if hashlib.sha256(pub).digest()[:8].hex() != entry["kid"]:
        return Check("its kid is not the key id of its public_key (the key was replaced)",
                     index_file, "not compared")
    for other in others:
        if other is not entry and other["public_key"] == entry["public_key"]:
            return Check(f"its public_key is also the {other['role']} key {other['kid']}",
                         index_file, "not compared")
    stem = keydir / f"{entry['role']}-{entry['kid']}"
    raw = _read(stem.with_suffix(".pub"))
    if raw != pub:
        what = "is missing" if raw is None else "holds another key than keys.json names"
        return Check(f"the raw public key file {what}", stem.with_suffix(".pub"), "not compared")
    pem = _read(stem.with_suffix(".pub.pem"))
    if pem is None or _public_pem_key(pem) != pub:
        what = "is missing" if pem is None else "holds another key than keys.json names"
        return Check(f"the PEM public key file {what}", stem.with_suffix(".pub.pem"),
                     "not compared")
    key_file = stem.with_suffix(".key.pem")
    data = _read(key_file)
    if data is None:
        return Check("the private key file is missing", key_file, "not compared")
    half, how = _private_half(data, passphrase)
    if half is None and how != "locked":
        return Check(f"the private key file {how}", key_file, "not compared")
    if half is not None and half != pub:
        return Check("the private key is not the one keys.json names", key_file, "compared")
    return Check(None, key_file, how)


def _trusted(index, role, statuses=("current", "previous")):
    return [bytes.fromhex(e["public_key"]) for status in statuses
            for e in index["keys"] if e["role"] == role and e["status"] == status]


def audit_epoch(keydir: Path, index: dict) -> Check:
    """Does `epochs/epoch-N.cbor` for the index's epoch N exist, verify with the fleet key
    and trust exactly the keys keys.json lists? An index edited to another epoch number or
    key status (no passphrase needed) would otherwise reach devices at provisioning."""
    from edgekit.keys import epoch as epoch_mod
    path = keydir / "epochs" / f"epoch-{index['epoch']}.cbor"
    data = _read(path)
    if data is None:
        return Check(f"keys.json names key epoch {index['epoch']}, whose KEY_EPOCH file is "
                     "missing", path, "")
    try:
        info = epoch_mod.open_key_epoch(data, _trusted(index, "fleet", ("current",))[0])
    except ValueError as exc:              # CoseError and WeakKeyError are ValueErrors
        return Check(f"does not verify with the fleet key in keys.json ({exc})", path, "")
    revoked = [bytes.fromhex(e["kid"]) for e in index["keys"] if e["status"] == "revoked"]
    same = (info["epoch"] == index["epoch"] and info["revoked"] == revoked
            and all(info["anchors"].get(r) == _trusted(index, r) for r in epoch_mod.ROTATED_ROLES))
    if not same:
        return Check("the signed epoch trusts or revokes other keys than keys.json lists",
                     path, "")
    return Check(None, path, "")


def audit(keydir: Path, index: dict, passphrase=None) -> list:
    """One Check per index entry, in order, then the Check of the current epoch's file."""
    return [audit_entry(keydir, e, passphrase, index["keys"]) for e in index["keys"]] + \
        [audit_epoch(keydir, index)]


def files_stamp(keydir: Path, index: dict) -> tuple:
    """(size, mtime) of every file audit reads: a changed file invalidates a memoised audit."""
    base = os.fspath(keydir)          # plain strings: pathlib was most of this call's time
    out = [_stamp(f"{base}/epochs/epoch-{index['epoch']}.cbor")]
    for entry in index["keys"]:
        stem = f"{base}/{entry['role']}-{entry['kid']}"
        out.extend(_stamp(stem + suffix) for suffix in SUFFIXES)
    return tuple(out)


def _stamp(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


def tamper_message(keydir: Path, entry, check: Check) -> str:
    """The one line a command stops with when `check` (of `entry`, or of the epoch file when
    `entry` is None) found a problem."""
    what = f" ({entry['role']} key {entry['kid']})" if entry else ""
    return (f"{check.file}: {check.problem}{what}; the key directory was changed outside "
            f"edgekit: restore {keydir} from your key backup (`edgekit keys list` shows "
            "every key's check)")

