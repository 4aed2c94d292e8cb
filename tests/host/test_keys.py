"""Host key management: key directory, signer contract, rotation/revocation epochs, seq counter,
and the `edgekit keys` CLI. Epoch messages are checked with cryptography directly and with
pycose (an independent COSE implementation), not only with our own decoder."""
import base64
import hashlib
import json
import pickle
import stat
import subprocess
import sys
import textwrap
import time

import cbor2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edgekit import catalog
from edgekit.cli import main
from edgekit.errors import EdgekitError
from edgekit.keys import epoch as epoch_mod
from edgekit.keys.signer import Ed25519Signer, kid_of
from edgekit.keys.store import KeyStore

PASS = "orange-tractor-glacier-41"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EDGEKIT_KEY_PASSPHRASE", PASS)
    return tmp_path / "home"


@pytest.fixture
def store(home):
    ks = KeyStore()
    ks.init(PASS)
    return ks


def _private_secrets(store):
    """Every form a leaked private key could take in text: raw hex, base64, PEM bodies."""
    secrets = []
    for pem_file in store.path.glob("*.key.pem"):
        key = serialization.load_pem_private_key(pem_file.read_bytes(), PASS.encode())
        raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
        secrets += [raw.hex(), base64.b64encode(raw).decode(), raw.hex().upper()]
        body = pem_file.read_text().splitlines()[1]  # first base64 line of the encrypted PEM
        secrets.append(body)
    return secrets


def _epoch_file(store, n):
    return (store.path / "epochs" / f"epoch-{n}.cbor").read_bytes()


def _fleet_pub(store):
    return store.anchors()["anchors"]["fleet"][0]


# --- key directory --------------------------------------------------------------------------
def test_init_creates_encrypted_keys_with_private_modes(store, home):
    assert store.path == home / "keys"
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o700
    rows = store.entries()
    assert sorted(r["role"] for r in rows) == ["firmware", "fleet", "operator"]
    for row in rows:
        stem = store.path / f"{row['role']}-{row['kid']}"
        pem = stem.with_suffix(".key.pem")
        assert stat.S_IMODE(pem.stat().st_mode) == 0o600
        assert pem.read_text().startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        with pytest.raises(TypeError):  # encrypted: unusable without the passphrase
            serialization.load_pem_private_key(pem.read_bytes(), None)
        key = serialization.load_pem_private_key(pem.read_bytes(), PASS.encode())
        assert isinstance(key, Ed25519PrivateKey)
        raw_pub = stem.with_suffix(".pub").read_bytes()
        assert raw_pub == key.public_key().public_bytes_raw()
        pem_pub = serialization.load_pem_public_key(stem.with_suffix(".pub.pem").read_bytes())
        assert pem_pub.public_bytes_raw() == raw_pub
        assert row["kid"] == hashlib.sha256(raw_pub).digest()[:8].hex()
        assert row["status"] == "current" and row["epoch"] == 1
    assert stat.S_IMODE(store.index_path.stat().st_mode) == 0o600
    assert store.epoch == 1 and (store.path / "epochs" / "epoch-1.cbor").exists()


def test_init_never_overwrites(store):
    before = {p.name: p.read_bytes() for p in store.path.iterdir() if p.is_file()}
    with pytest.raises(EdgekitError, match="never overwrites.*rotate"):
        store.init(PASS)
    after = {p.name: p.read_bytes() for p in store.path.iterdir() if p.is_file()}
    assert before == after


def test_init_refuses_stray_key_files_without_index(tmp_path):
    folder = tmp_path / "k"
    folder.mkdir()
    (folder / "fleet-0011223344556677.key.pem").write_text("left by a crashed init")
    with pytest.raises(EdgekitError, match="fleet-0011223344556677.key.pem"):
        KeyStore(folder).init(PASS)


def test_short_passphrase_refused_before_anything_is_written(tmp_path):
    with pytest.raises(EdgekitError, match="at least 12"):
        KeyStore(tmp_path / "k").init("short")
    assert not (tmp_path / "k" / "keys.json").exists()


def test_wrong_passphrase_is_a_clear_error(store):
    with pytest.raises(EdgekitError) as info:
        store.signer("fleet", "not-the-passphrase")
    text = str(info.value)
    assert "wrong passphrase" in text and "not-the-passphrase" not in text
    assert info.value.__cause__ is None and info.value.__suppress_context__
    with pytest.raises(EdgekitError, match="no passphrase"):
        store.signer("operator", "")


# --- signer contract ------------------------------------------------------------------------
def test_signer_contract_and_no_secret_leaks(store):
    signer = store.signer("operator", PASS)
    assert signer.role == "operator" and len(signer.public_key_bytes) == 32
    assert signer.kid == hashlib.sha256(signer.public_key_bytes).digest()[:8]
    assert signer.kid.hex() == store.current("operator")["kid"]
    sig = signer.sign(b"payload")
    assert len(sig) == 64
    Ed25519PublicKey.from_public_bytes(signer.public_key_bytes).verify(sig, b"payload")
    secrets = _private_secrets(store)
    for text in (repr(signer), str(signer), repr(store)):
        assert not any(s in text for s in secrets)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(signer)
    assert not hasattr(signer, "__dict__")  # no stray attribute can carry the key out


def test_kid_of_rejects_wrong_length():
    assert kid_of(bytes(32)) == hashlib.sha256(bytes(32)).digest()[:8]
    with pytest.raises(ValueError, match="32 bytes"):
        kid_of(bytes(31))


def test_signer_plugs_into_cose(store):
    from edgekit.protocol import cose
    signer = store.signer("operator", PASS)
    msg = cose.sign1(b"\xa0", signer, {catalog.HDR_TYPE: catalog.REBOOT, catalog.HDR_SEQ: 1,
                                      catalog.HDR_SENDER: "host"})
    assert cose.verify1(msg, signer.public_key_bytes) == b"\xa0"


# --- rotation, revocation, KEY_EPOCH --------------------------------------------------------
def _verify_with_cryptography(message, fleet_pub):
    """Independent of edgekit: decode with cbor2, rebuild Sig_structure, verify."""
    item = cbor2.loads(message)
    assert isinstance(item, cbor2.CBORTag) and item.tag == catalog.TAG_COSE_SIGN1
    protected, unprotected, payload, signature = item.value
    sig_structure = cbor2.dumps(["Signature1", protected, b"", payload])
    Ed25519PublicKey.from_public_bytes(fleet_pub).verify(signature, sig_structure)
    return cbor2.loads(protected), unprotected, cbor2.loads(payload)


def _verify_with_pycose(message, fleet_pub):
    from pycose.keys import OKPKey
    from pycose.keys.curves import Ed25519
    from pycose.messages import CoseMessage
    decoded = CoseMessage.decode(message)
    decoded.key = OKPKey(crv=Ed25519, x=fleet_pub)
    return decoded.verify_signature()


def test_rotate_then_revoke_produces_signed_epochs(store):
    old_op = store.current("operator")["kid"]
    fw = store.current("firmware")["kid"]
    new = store.rotate("operator", PASS)
    assert store.epoch == 2 and new["epoch"] == 2 and new["kid"] != old_op
    assert store.find_kid(old_op)["status"] == "previous"
    assert store.anchors()["anchors"]["operator"] == [
        store.public_key(new["kid"]), store.public_key(old_op)]

    store.revoke(old_op, PASS)
    assert store.epoch == 3 and store.find_kid(old_op)["status"] == "revoked"

    fleet_pub = _fleet_pub(store)
    seqs = []
    for number, operators, revoked in ((1, [old_op], []), (2, [new["kid"], old_op], []),
                                       (3, [new["kid"]], [old_op])):
        message = _epoch_file(store, number)
        protected, unprotected, payload = _verify_with_cryptography(message, fleet_pub)
        assert _verify_with_pycose(message, fleet_pub)
        assert set(protected) == {catalog.COSE_ALG, catalog.COSE_KID, catalog.HDR_TYPE,
                                  catalog.HDR_SEQ, catalog.HDR_SENDER}
        assert protected[catalog.COSE_ALG] == catalog.ALG_EDDSA
        assert protected[catalog.COSE_KID] == kid_of(fleet_pub)
        assert protected[catalog.HDR_TYPE] == catalog.KEY_EPOCH
        assert protected[catalog.HDR_SENDER] == "fleet"
        assert unprotected == {}
        seqs.append(protected[catalog.HDR_SEQ])
        # exactly the CDDL `key-epoch` map (protocol/edgekit.cddl): a closed map
        assert set(payload) == {catalog.K_EPOCH, catalog.K_ANCHORS, catalog.K_REVOKED}
        assert payload[catalog.K_EPOCH] == number
        anchors = payload[catalog.K_ANCHORS]
        assert set(anchors) == {"operator", "firmware"}
        assert [kid_of(k).hex() for k in anchors["operator"]] == operators
        assert [kid_of(k).hex() for k in anchors["firmware"]] == [fw]
        assert [k.hex() for k in payload[catalog.K_REVOKED]] == revoked
        # our own reader agrees with the independent ones
        assert epoch_mod.open_key_epoch(message, fleet_pub)["epoch"] == number
    assert seqs == sorted(seqs) and len(set(seqs)) == 3


def test_epoch_does_not_verify_with_another_key(store):
    from edgekit.protocol.cose import CoseError
    other = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    with pytest.raises(CoseError):
        epoch_mod.open_key_epoch(_epoch_file(store, 1), other)
    tampered = bytearray(_epoch_file(store, 1))
    tampered[-70] ^= 1  # inside the payload bstr, before the signature
    with pytest.raises(ValueError):
        epoch_mod.open_key_epoch(bytes(tampered), _fleet_pub(store))


def test_rotation_rules(store):
    with pytest.raises(EdgekitError, match="only the operator and firmware"):
        store.rotate("fleet", PASS)
    first = store.current("firmware")["kid"]
    store.rotate("firmware", PASS)
    with pytest.raises(EdgekitError, match=f"still 'previous'.*revoke {first}"):
        store.rotate("firmware", PASS)
    assert store.epoch == 2  # the refused rotation changed nothing
    with pytest.raises(EdgekitError, match="current firmware key; rotate first"):
        store.revoke(store.current("firmware")["kid"], PASS)
    with pytest.raises(EdgekitError, match="fleet root cannot revoke itself"):
        store.revoke(store.current("fleet")["kid"], PASS)
    with pytest.raises(EdgekitError, match="wrong passphrase"):
        store.revoke(first, "wrong-passphrase!")
    assert store.find_kid(first)["status"] == "previous" and store.epoch == 2

    # a leaked current key: replaced and revoked in one epoch, previous still trusted
    leaked = store.current("firmware")["kid"]
    store.rotate("firmware", PASS, compromised=True)
    statuses = {e["kid"]: e["status"] for e in store.entries() if e["role"] == "firmware"}
    assert statuses[leaked] == "revoked" and statuses[first] == "previous"
    payload = cbor2.loads(cbor2.loads(_epoch_file(store, 3)).value[2])
    assert leaked in [k.hex() for k in payload[catalog.K_REVOKED]]
    assert len(payload[catalog.K_ANCHORS]["firmware"]) == 2
    with pytest.raises(EdgekitError, match="already revoked"):
        store.revoke(leaked, PASS)


def test_epoch_payload_rules():
    # real keys: epoch_payload refuses weak ones (tests/host/test_weak_keys.py)
    a, b, c = (Ed25519PrivateKey.generate().public_key().public_bytes_raw() for _ in range(3))
    ok = epoch_mod.epoch_payload(4, {"operator": [a, b], "firmware": [c]}, [])
    assert ok[catalog.K_ANCHORS]["operator"] == [a, b]
    for epoch, anchors, revoked, match in (
            (0, {"operator": [a], "firmware": [c]}, [], "positive"),
            (1, {"operator": [a, b, c], "firmware": [c]}, [], "1 or 2"),
            (1, {"operator": [a]}, [], "firmware needs"),
            (1, {"operator": [a], "firmware": [c]}, [kid_of(a)], "revoked key")):
        with pytest.raises(ValueError, match=match):
            epoch_mod.epoch_payload(epoch, anchors, revoked)


def test_find_kid_prefix_rules(store):
    kid = store.current("operator")["kid"]
    assert store.find_kid(kid[:6].upper())["kid"] == kid
    for bad in ("ab", "zzzz"):
        with pytest.raises(EdgekitError, match="at least 4"):
            store.find_kid(bad)


# --- sequence counter -----------------------------------------------------------------------
def test_next_seq_is_clock_seeded_and_survives_clock_going_back(store, monkeypatch):
    before = time.time_ns() // 1000
    first = store.next_seq("operator")
    assert first >= before
    monkeypatch.setattr(time, "time_ns", lambda: 1_000_000_000)  # clock set back to 1970
    second = store.next_seq("operator")
    third = KeyStore(store.path).next_seq("operator")  # a new process-like store object
    assert first < second < third and third == second + 1


def test_next_seq_unique_across_concurrent_processes(store, tmp_path):
    worker = textwrap.dedent(f"""
        import time
        from edgekit.keys.store import KeyStore
        # A clock stuck in the past (set back, or coarse) makes every seq last+1: only the
        # lock keeps two processes from reading the same `last`.
        time.time_ns = lambda: 1_000_000_000
        ks = KeyStore({str(store.path)!r})
        print(" ".join(str(ks.next_seq("operator")) for _ in range(40)))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", worker], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(6)]
    all_seqs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        mine = [int(x) for x in out.split()]
        assert mine == sorted(mine) and len(mine) == 40
        all_seqs += mine
    assert len(set(all_seqs)) == len(all_seqs) == 240
    assert store.next_seq("operator") > max(all_seqs)


# --- CLI ------------------------------------------------------------------------------------
def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_end_to_end_without_leaking_secrets(home, capsys, tmp_path):
    outputs = []

    def run(*argv, expect=0):
        code, out, err = _run(capsys, *argv)
        assert code == expect, (argv, out, err)
        assert "Traceback" not in out + err
        outputs.append(out + err)
        return out, err

    run("keys", "init")
    store = KeyStore()
    listed = json.loads(run("keys", "list", "--json")[0])
    assert listed["epoch"] == 1 and len(listed["keys"]) == 3
    assert all(set(k) >= {"role", "kid", "status", "created", "fingerprint"}
               for k in listed["keys"])
    old = store.current("operator")["kid"]
    rotated = json.loads(run("keys", "rotate", "operator", "--json")[0])
    assert rotated["replaced"] == old and rotated["epoch"] == 2
    run("keys", "rotate", "operator", expect=2)  # previous still pending
    run("keys", "revoke", old)
    epoch = json.loads(run("keys", "epoch", "--json")[0])
    assert epoch["epoch"] == 3 and epoch["revoked"] == [old]
    run("keys", "epoch", "9", expect=2)
    out_file = tmp_path / "anchors.json"
    run("keys", "export-public", "--out", str(out_file))
    exported = json.loads(out_file.read_text())
    assert exported["epoch"] == 3 and exported["revoked"] == [old]
    assert [a["kid"] for a in exported["anchors"]["operator"]] == [rotated["kid"]]
    for role, keys in exported["anchors"].items():
        for key in keys:
            assert bytes.fromhex(key["public_key"]) == store.public_key(key["kid"])
    outputs.append(out_file.read_text())
    run("keys", "export-public")
    run("keys", "list")
    run("keys", "init", expect=2)
    run("keys", "rotate", "firmware", "--passphrase-env", "NOT_SET_ANYWHERE", expect=2)

    secrets = _private_secrets(store) + [PASS, "PRIVATE KEY"]
    outputs.append(store.index_path.read_text())
    for text in outputs:
        for secret in secrets:
            assert secret not in text


def test_cli_wrong_passphrase_exit_code_and_message(home, capsys, monkeypatch):
    assert main(["keys", "init"]) == 0
    monkeypatch.setenv("OTHER_PASS", "definitely-wrong")
    code, out, err = _run(capsys, "keys", "rotate", "operator", "--passphrase-env",
                          "OTHER_PASS")
    assert code == 2
    assert err.startswith("edgekit: error: cannot decrypt the fleet key")
    assert "definitely-wrong" not in out + err and len(err.strip().splitlines()) == 1
    assert KeyStore().epoch == 1


def test_cli_prompts_twice_and_refuses_mismatch(home, capsys, monkeypatch):
    monkeypatch.delenv("EDGEKIT_KEY_PASSPHRASE")
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    answers = iter(["first-passphrase", "second-passphrase"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    code, _, err = _run(capsys, "keys", "init")
    assert code == 2 and "differ" in err and not KeyStore().exists()
    answers = iter(["same-passphrase", "same-passphrase"])
    assert main(["keys", "init"]) == 0
    KeyStore().signer("fleet", "same-passphrase")


def test_cli_without_terminal_or_env_explains(home, capsys, monkeypatch):
    monkeypatch.delenv("EDGEKIT_KEY_PASSPHRASE")
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    code, _, err = _run(capsys, "keys", "init")
    assert code == 2 and "EDGEKIT_KEY_PASSPHRASE" in err


def test_cli_missing_key_directory_explains(home, capsys):
    code, _, err = _run(capsys, "keys", "list")
    assert code == 2 and "edgekit keys init" in err


@pytest.mark.parametrize("argv", [["keys"], ["keys", "init"], ["keys", "list"],
                                  ["keys", "export-public"], ["keys", "rotate"],
                                  ["keys", "revoke"], ["keys", "epoch"]])
def test_every_keys_command_has_help(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv + ["--help"])
    assert info.value.code == 0
    assert "usage: edgekit keys" in capsys.readouterr().out


def test_signer_rejects_non_ed25519_pem():
    from cryptography.hazmat.primitives.asymmetric import ec
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASS.encode()))
    with pytest.raises(EdgekitError, match="not an Ed25519 key"):
        Ed25519Signer.from_encrypted_pem(pem, PASS, "operator")
