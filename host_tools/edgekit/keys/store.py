"""The host key directory: fleet, firmware and operator Ed25519 keys, their index and epochs.

Layout (all under one directory, mode 0700):

    keys.json                    index: role, kid, status, created, epoch (no secrets)
    <role>-<kid>.key.pem         private key, encrypted PKCS#8 PEM, mode 0600
    <role>-<kid>.pub             raw 32-byte public key
    <role>-<kid>.pub.pem         public key, SubjectPublicKeyInfo PEM
    epochs/epoch-<N>.cbor        KEY_EPOCH N, signed by the fleet root
    seq/<kid>.seq                last signing sequence number used with that key (SPEC 5)

Every file is written to a temporary name, fsynced and renamed, so a power cut leaves either
the old or the new version. Changes that touch the index hold an fcntl lock on `.lock`, so two
processes never rotate at once.
"""
import contextlib
import fcntl
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

from edgekit.paths import edgekit_home  # re-exported: keys.cli imports it from here
from edgekit import catalog
from edgekit.errors import EdgekitError
from edgekit.keys import epoch as epoch_mod
from edgekit.keys import integrity
from edgekit.keys.signer import Ed25519Signer, fingerprint

ROLES = (catalog.ROLE_FLEET, catalog.ROLE_FIRMWARE, catalog.ROLE_OPERATOR)
ROTATABLE = (catalog.ROLE_OPERATOR, catalog.ROLE_FIRMWARE)
CURRENT, PREVIOUS, REVOKED = "current", "previous", "revoked"
INDEX = "keys.json"
INDEX_FORMAT = "edgekit-keys/1"
ANCHORS_FORMAT = "edgekit-trust-anchors/1"
PASSPHRASE_ENV = "EDGEKIT_KEY_PASSPHRASE"




def default_keys_dir() -> Path:
    return edgekit_home() / "keys"


def _now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _fsync_dir(path: Path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o644):
    """Write-temp, fsync, rename, fsync dir: the file is old or new after any crash."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # O_CREAT's mode is filtered by the umask; secrets must be 0600
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


@contextlib.contextmanager
def _locked(lock_path: Path):
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


MIN_PASSPHRASE = 12  # the PEM KDF is only 2048 PBKDF2 rounds: length is the defence


def check_new_passphrase(passphrase: str):
    if not passphrase or len(passphrase) < MIN_PASSPHRASE:
        raise EdgekitError(f"the key passphrase must have at least {MIN_PASSPHRASE} characters: "
                           "choose a longer one (a few random words work well)")


class KeyStore:
    """One key directory. Methods that need a private key take the passphrase."""

    def __init__(self, path=None):
        self.path = Path(path) if path else default_keys_dir()
        self._audit_memo = None

    def __repr__(self):
        return f"KeyStore({str(self.path)!r})"

    # --- index -------------------------------------------------------------------------
    @property
    def index_path(self) -> Path:
        return self.path / INDEX

    def exists(self) -> bool:
        return self.index_path.exists()

    def _missing(self):
        return EdgekitError(f"no keys in {self.path}: run `edgekit keys init` first, or point "
                            "--keys (or EDGEKIT_HOME) at the fleet's key directory")

    def require(self):
        """Fail with the one 'no keys' message, or the directory's first inconsistency,
        before anything asks for a passphrase."""
        if not self.exists():
            raise self._missing()
        self._read_index()
        return self

    def _load_index(self) -> dict:
        return self._load()[0]

    def _load(self):
        """(keys.json parsed and its shape checked (integrity.index_problem), its bytes); no
        file besides it is read. Damage of any kind is one EdgekitError naming the file."""
        try:
            raw = self.index_path.read_bytes()
        except FileNotFoundError:
            raise self._missing() from None
        except OSError as exc:
            raise EdgekitError(f"{self.index_path} is unreadable ({exc.strerror}): check its "
                               "permissions, or restore it from your key backup") from None
        try:
            index = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            reason = " ".join(str(exc).split())[:120]   # one line, bounded
            raise EdgekitError(f"{self.index_path} is damaged (not JSON: {reason}): restore "
                               "it from your key backup") from None
        if isinstance(index, dict) and index.get("format") != INDEX_FORMAT:
            raise EdgekitError(f"{self.index_path} is not an edgekit key index "
                               f"(format {index.get('format')!r:.40}, expected {INDEX_FORMAT}"
                               "): point --keys at a key directory, or restore it from your "
                               "key backup")
        memo = self._audit_memo
        if memo is None or memo[0][0] != raw:    # the same bytes were checked already
            reason = integrity.index_problem(index, ROLES, (CURRENT, PREVIOUS, REVOKED))
            if reason:
                raise EdgekitError(f"{self.index_path} is damaged ({reason}): restore it "
                                   "from your key backup")
        return index, raw

    def _read_index(self) -> dict:
        """keys.json, once every key in it matches its files (integrity.audit); the first
        mismatch stops the command."""
        index, raw = self._load()
        for entry, result in zip(index["keys"] + [None], self._audit(index, raw)):
            if result.problem:
                raise EdgekitError(integrity.tamper_message(self.path, entry, result))
        return index

    def _audit(self, index, raw, passphrase=None) -> list:
        """integrity.audit of `index` (whose bytes are `raw`), remembered while keys.json and
        the key files keep their bytes, size and modification time (a command reads the
        index many times: next_seq does, per message)."""
        stamp = (raw, integrity.files_stamp(self.path, index))
        memo = self._audit_memo
        if passphrase is None and memo is not None and memo[0] == stamp:
            return memo[1]
        results = integrity.audit(self.path, index, passphrase)
        if passphrase is None:
            self._audit_memo = (stamp, results)
        return results

    def audit_report(self, passphrase=None) -> dict:
        """What `keys list` shows: {epoch, keys, epoch_file, epoch_check, epoch_message}.
        `keys` are entries() rows plus `check` ("ok" or what is wrong), `private_key` (how
        far the private key was compared: "matches"; "locked" when encrypted and no
        passphrase is given) and `tamper_message` (the line a command stops with);
        `epoch_check` is the current KEY_EPOCH file's. Never raises for a mismatch (the
        caller shows them); a damaged keys.json still raises."""
        index, raw = self._load()
        rows = []
        *checks, epoch_check = self._audit(index, raw, passphrase)
        for entry, result in zip(index["keys"], checks):
            row = dict(entry)
            row["fingerprint"] = fingerprint(bytes.fromhex(entry["public_key"]))
            row["check"] = result.problem or "ok"
            row["private_key"] = result.private
            row["tamper_message"] = (integrity.tamper_message(self.path, entry, result)
                                     if result.problem else None)
            rows.append(row)
        return {"epoch": index["epoch"], "keys": rows,
                "epoch_file": str(epoch_check.file), "epoch_check": epoch_check.problem or "ok",
                "epoch_message": (integrity.tamper_message(self.path, None, epoch_check)
                                  if epoch_check.problem else None)}

    def _write_index(self, index: dict):
        atomic_write(self.index_path, json.dumps(index, indent=2).encode() + b"\n", 0o600)

    @property
    def epoch(self) -> int:
        return self._read_index()["epoch"]

    def entries(self) -> list:
        """Index rows: role, kid (hex), status, created, epoch, public_key (hex), fingerprint."""
        rows = []
        for entry in self._read_index()["keys"]:
            row = dict(entry)
            row["fingerprint"] = fingerprint(bytes.fromhex(entry["public_key"]))
            rows.append(row)
        return rows

    def _find(self, index, role, status):
        return [e for e in index["keys"] if e["role"] == role and e["status"] == status]

    def current(self, role: str) -> dict:
        if role not in ROLES:
            raise EdgekitError(f"unknown key role {role!r}: roles are {', '.join(ROLES)}")
        found = self._find(self._read_index(), role, CURRENT)
        if not found:
            raise EdgekitError(f"no current {role} key in {self.path}: the index is damaged; "
                               "restore keys.json from your backup")
        return found[0]

    def find_kid(self, kid_hex: str) -> dict:
        """The index row whose kid starts with `kid_hex` (at least 4 hex digits, unique)."""
        wanted = kid_hex.strip().lower()
        if len(wanted) < 4 or any(c not in "0123456789abcdef" for c in wanted):
            raise EdgekitError(f"key id {kid_hex!r} is not hex of at least 4 digits: copy it "
                               "from `edgekit keys list`")
        matches = [e for e in self._read_index()["keys"] if e["kid"].startswith(wanted)]
        if not matches:
            raise EdgekitError(f"no key with id {kid_hex} in {self.path}: see `edgekit keys list`")
        if len(matches) > 1:
            raise EdgekitError(f"key id {kid_hex} matches {len(matches)} keys: give more digits")
        return matches[0]

    # --- files --------------------------------------------------------------------------
    def _stem(self, entry) -> Path:
        return self.path / f"{entry['role']}-{entry['kid']}"

    def _write_key_files(self, signer: Ed25519Signer, passphrase: str):
        stem = self.path / f"{signer.role}-{signer.kid.hex()}"
        atomic_write(stem.with_suffix(".key.pem"), signer.encrypted_pem(passphrase), 0o600)
        atomic_write(stem.with_suffix(".pub"), signer.public_key_bytes)
        atomic_write(stem.with_suffix(".pub.pem"), signer.public_pem())

    def signer(self, role: str, passphrase: str) -> Ed25519Signer:
        """The current key of `role`, decrypted. A wrong passphrase raises EdgekitError."""
        return self._load_signer(self.current(role), passphrase)

    def _load_signer(self, entry: dict, passphrase: str) -> Ed25519Signer:
        role = entry["role"]
        key_file = self._stem(entry).with_suffix(".key.pem")
        try:
            pem = key_file.read_bytes()
        except OSError as exc:
            raise EdgekitError(f"cannot read the {role} private key {key_file} "
                               f"({exc.strerror}): restore it from your backup") from None
        signer = Ed25519Signer.from_encrypted_pem(pem, passphrase, role, str(key_file))
        if signer.public_key_bytes.hex() != entry["public_key"]:
            raise EdgekitError(f"{key_file} does not hold key {entry['kid']} that keys.json "
                               "names: the directory was edited by hand; restore it from backup")
        return signer

    def public_key(self, kid_hex: str) -> bytes:
        return bytes.fromhex(self.find_kid(kid_hex)["public_key"])

    # --- trust anchors ------------------------------------------------------------------
    def anchors(self) -> dict:
        """Trust anchors a device receives: {epoch, anchors: {role: [public keys]}, revoked}.

        Per role the current key comes first, then the previous one during a rollout.
        """
        index = self._read_index()
        trust = {}
        for role in ROLES:
            keys = self._find(index, role, CURRENT) + self._find(index, role, PREVIOUS)
            trust[role] = [bytes.fromhex(e["public_key"]) for e in keys]
        revoked = [bytes.fromhex(e["kid"]) for e in index["keys"] if e["status"] == REVOKED]
        return {"epoch": index["epoch"], "anchors": trust, "revoked": revoked}

    def export_public(self) -> dict:
        """JSON-ready trust anchors (what `edgekit keys export-public` writes)."""
        index = self._read_index()
        out = {"format": ANCHORS_FORMAT, "epoch": index["epoch"], "anchors": {}, "revoked": []}
        for role in ROLES:
            rows = self._find(index, role, CURRENT) + self._find(index, role, PREVIOUS)
            out["anchors"][role] = [{"kid": e["kid"], "status": e["status"],
                                     "public_key": e["public_key"]} for e in rows]
        out["revoked"] = [e["kid"] for e in index["keys"] if e["status"] == REVOKED]
        return out

    def epoch_path(self, number: int = None) -> Path:
        return self.path / "epochs" / f"epoch-{self.epoch if number is None else number}.cbor"

    # --- changes ------------------------------------------------------------------------
    def init(self, passphrase: str) -> list:
        """Create the three role keys and epoch 1. Never overwrites an existing key."""
        check_new_passphrase(passphrase)
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.path, 0o700)
        with _locked(self.path / ".lock"):
            self.refuse_existing()
            signers = [Ed25519Signer.generate(role) for role in ROLES]
            for signer in signers:
                self._write_key_files(signer, passphrase)
            now = _now_iso()
            index = {"format": INDEX_FORMAT, "epoch": 1, "keys": [
                {"role": s.role, "kid": s.kid.hex(), "status": CURRENT, "created": now,
                 "epoch": 1, "public_key": s.public_key_bytes.hex()} for s in signers]}
            self._publish_epoch(index, signers[0])
            self._write_index(index)  # last: the keys exist only once the index names them
        return self.entries()

    def refuse_existing(self):
        """Raise unless the directory is free of keys (init never overwrites one)."""
        existing = sorted(p.name for p in self.path.glob("*.key.pem"))
        if self.exists() or existing:
            what = "a keys.json index" if self.exists() else ", ".join(existing)
            raise EdgekitError(
                f"{self.path} already holds keys ({what}); edgekit never overwrites a key. "
                "To replace the operator or firmware key use `edgekit keys rotate ROLE`; "
                "to start a new fleet use another directory (--keys DIR)")

    def check_rotatable(self, role: str, compromised: bool = False):
        """Raise unless `role` can rotate now (devices hold at most two keys per role)."""
        if role not in ROTATABLE:
            raise EdgekitError(
                f"only the operator and firmware keys rotate, not {role!r}: the fleet root "
                "signs every epoch, so replacing it means re-provisioning the fleet")
        previous = self._find(self._read_index(), role, PREVIOUS)
        if previous and not compromised:
            raise EdgekitError(
                f"the {role} key {previous[0]['kid']} is still 'previous' from the last "
                f"rotation; finish that rollout with `edgekit keys revoke "
                f"{previous[0]['kid']}` first (devices hold at most two keys per role)")

    def rotate(self, role: str, passphrase: str, compromised: bool = False) -> dict:
        """Issue a new current key for `role`; the old one becomes previous (or revoked)."""
        with _locked(self.path / ".lock"):
            self.check_rotatable(role, compromised)
            index = self._read_index()
            old = self._find(index, role, CURRENT)[0]
            fleet = self._fleet_signer(index, passphrase)
            new = Ed25519Signer.generate(role)
            self._write_key_files(new, passphrase)
            number = index["epoch"] + 1
            now = _now_iso()
            old["status"] = REVOKED if compromised else PREVIOUS
            old["changed"] = now
            index["keys"].append({"role": role, "kid": new.kid.hex(), "status": CURRENT,
                                  "created": now, "epoch": number,
                                  "public_key": new.public_key_bytes.hex()})
            index["epoch"] = number
            self._publish_epoch(index, fleet)
            self._write_index(index)
            return dict(index["keys"][-1])

    def check_revocable(self, entry: dict):
        """Raise unless `entry` (an index row) is a previous operator/firmware key."""
        if entry["role"] == catalog.ROLE_FLEET:
            raise EdgekitError("the fleet root cannot revoke itself: it signs every epoch. "
                               "If it is compromised, re-provision the fleet with new keys")
        if entry["status"] == REVOKED:
            raise EdgekitError(f"key {entry['kid']} is already revoked")
        if entry["status"] == CURRENT:
            raise EdgekitError(
                f"key {entry['kid']} is the current {entry['role']} key; rotate first "
                f"(`edgekit keys rotate {entry['role']}`, add --compromised if it leaked), "
                "then revoke the old one")

    def revoke(self, kid_hex: str, passphrase: str) -> dict:
        """Stop trusting a previous operator/firmware key; issues a new epoch."""
        with _locked(self.path / ".lock"):
            target = self.find_kid(kid_hex)
            index = self._read_index()
            entry = next(e for e in index["keys"] if e["kid"] == target["kid"])
            self.check_revocable(entry)
            fleet = self._fleet_signer(index, passphrase)
            entry["status"] = REVOKED
            entry["changed"] = _now_iso()
            index["epoch"] += 1
            self._publish_epoch(index, fleet)
            self._write_index(index)
            return dict(entry)

    def _fleet_signer(self, index: dict, passphrase: str) -> Ed25519Signer:
        return self._load_signer(self._find(index, catalog.ROLE_FLEET, CURRENT)[0], passphrase)

    def _publish_epoch(self, index: dict, fleet: Ed25519Signer):
        """Sign and save KEY_EPOCH for `index['epoch']` (before the index names that epoch)."""
        trust = {}
        for role in ROTATABLE:
            rows = self._find(index, role, CURRENT) + self._find(index, role, PREVIOUS)
            trust[role] = [bytes.fromhex(e["public_key"]) for e in rows]
        revoked = [bytes.fromhex(e["kid"]) for e in index["keys"] if e["status"] == REVOKED]
        message = epoch_mod.build_key_epoch(fleet, self.next_seq_for(fleet.kid.hex()),
                                            index["epoch"], trust, revoked)
        folder = self.path / "epochs"
        folder.mkdir(mode=0o700, exist_ok=True)
        atomic_write(folder / f"epoch-{index['epoch']}.cbor", message)

    # --- signing sequence numbers (SPEC 5) ----------------------------------------------
    def next_seq(self, role: str) -> int:
        """Next seq for the current key of `role`: strictly above every earlier one."""
        return self.next_seq_for(self.current(role)["kid"])

    def next_seq_for(self, kid_hex: str) -> int:
        """Seeded from the wall clock in microseconds, so a lost counter file or a copied key
        directory still moves forward; persisted before it is returned, under a lock, so
        concurrent processes never hand out the same number."""
        folder = self.path / "seq"
        folder.mkdir(mode=0o700, exist_ok=True)
        data = folder / f"{kid_hex}.seq"
        with _locked(folder / f"{kid_hex}.lock"):
            try:
                last = int(data.read_text().strip() or 0)
            except FileNotFoundError:
                last = 0
            except ValueError:
                raise EdgekitError(f"{data} is damaged: delete it; the counter then restarts "
                                   "from the wall clock, above earlier values unless the "
                                   "clock was set back") from None
            seq = max(last + 1, time.time_ns() // 1000)
            atomic_write(data, b"%d\n" % seq, 0o600)
        return seq
