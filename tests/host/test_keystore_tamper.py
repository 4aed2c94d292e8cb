"""The key directory is tamper-evident, through the CLI: an edited keys.json, a swapped .pub
or private key file stops every command that loads keys with one line naming the file
(exit status 2) and writes nothing; `keys list` shows each key's check. A hypothesis fuzz
damages keys.json in every way it can think of (missing fields, wrong types, truncation,
binary garbage) and runs `keys list` and `keys rotate` (which would write) against it."""
import contextlib
import io
import json
import shutil

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekit.cli import main
from edgekit.keys.signer import kid_of
from edgekit.keys.store import KeyStore

PASS = "orange-tractor-glacier-41"
IDENTITY = b"\x01" + bytes(31)


def run(*argv):
    """(exit status, stdout, stderr) of `edgekit argv`; an exception is a test failure."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def snapshot(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A key directory made once (after one rotation, so it has a previous key too)."""
    home = tmp_path_factory.mktemp("template")
    store = KeyStore(home / "keys")
    store.init(PASS)
    store.rotate("operator", PASS)
    return home / "keys"


@pytest.fixture
def keys(template, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_HOME", str(tmp_path))
    monkeypatch.setenv("EDGEKIT_KEY_PASSPHRASE", PASS)
    shutil.copytree(template, tmp_path / "keys")
    return tmp_path / "keys"


def index(keys):
    return json.loads((keys / "keys.json").read_text())


def write_index(keys, data):
    (keys / "keys.json").write_text(json.dumps(data, indent=2))


def entry(data, role, status="current"):
    return next(e for e in data["keys"] if e["role"] == role and e["status"] == status)


# Commands that load keys; each must refuse a tampered directory and write nothing.
LOADERS = [("keys", "list"), ("keys", "list", "--json"), ("keys", "export-public"),
           ("keys", "rotate", "firmware"), ("keys", "epoch"),
           ("provision", "socket://127.0.0.1:9", "--kind", "water_meter", "--site", "x")]


def assert_refused(keys, file, words):
    """Every loader stops with one line naming `file` and containing `words`, writes nothing."""
    home = keys.parent
    before = snapshot(home)
    for argv in LOADERS:
        code, _, err = run(*argv)
        lines = err.strip().splitlines()
        assert code == 2, (argv, err)
        assert len(lines) == 1 and "Traceback" not in err, (argv, err)
        assert str(file) in lines[0] and words in lines[0], (argv, lines[0])
        assert "restore" in lines[0]
    assert snapshot(home) == before


def test_an_untouched_directory_checks_ok(keys):
    code, out, err = run("keys", "list", "--json")
    rows = json.loads(out)["keys"]
    assert code == 0 and err == ""
    assert [r["check"] for r in rows] == ["ok"] * 4
    assert {r["private_key"] for r in rows} == {"locked"}
    code, out, _ = run("keys", "list", "--json", "--unlock")
    assert code == 0 and {r["private_key"] for r in json.loads(out)["keys"]} == {"matches"}
    code, out, _ = run("keys", "list")
    assert code == 0 and " CHECK" in out.splitlines()[1] and "add --unlock" in out
    assert "KEY_EPOCH 2 (" in out and "epoch-2.cbor): ok" in out


def test_operator_public_key_edited_to_the_identity_point(keys):
    data = index(keys)
    entry(data, "operator")["public_key"] = IDENTITY.hex()
    write_index(keys, data)
    code, out, err = run("keys", "list", "--json")
    rows = {r["kid"]: r for r in json.loads(out)["keys"]}
    op = rows[entry(data, "operator")["kid"]]
    assert code == 2 and "small order" in op["check"]
    assert [r["check"] for r in rows.values()].count("ok") == 3
    assert_refused(keys, keys / "keys.json", "small order")


def test_operator_public_key_replaced_by_another_real_key(keys):
    data = index(keys)
    other = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    entry(data, "operator")["public_key"] = other.hex()
    write_index(keys, data)
    assert_refused(keys, keys / "keys.json", "kid is not the key id")


def test_public_key_and_kid_replaced_together(keys):
    data = index(keys)
    other = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    op = entry(data, "operator")
    op["public_key"], op["kid"] = other.hex(), kid_of(other).hex()
    write_index(keys, data)
    assert_refused(keys, keys / f"operator-{op['kid']}.pub", "raw public key file is missing")


def test_swapped_pub_file(keys):
    data = index(keys)
    op, fw = entry(data, "operator"), entry(data, "firmware")
    target = keys / f"operator-{op['kid']}.pub"
    target.write_bytes((keys / f"firmware-{fw['kid']}.pub").read_bytes())
    code, out, _ = run("keys", "list")
    assert code == 2 and "holds another key" in out
    assert_refused(keys, target, "raw public key file holds another key")


def test_swapped_pub_pem_file(keys):
    data = index(keys)
    op, fw = entry(data, "operator", "previous"), entry(data, "firmware")
    target = keys / f"operator-{op['kid']}.pub.pem"
    target.write_bytes((keys / f"firmware-{fw['kid']}.pub.pem").read_bytes())
    assert_refused(keys, target, "PEM public key file holds another key")


def test_swapped_private_key_is_found_when_unlocked(keys):
    data = index(keys)
    op, fw = entry(data, "operator"), entry(data, "firmware")
    target = keys / f"operator-{op['kid']}.key.pem"
    target.write_bytes((keys / f"firmware-{fw['kid']}.key.pem").read_bytes())
    code, out, _ = run("keys", "list", "--json")     # locked: cannot be seen, and says so
    assert code == 0
    assert {r["private_key"] for r in json.loads(out)["keys"]} == {"locked"}
    before = snapshot(keys.parent)
    code, out, err = run("keys", "list", "--unlock")
    assert code == 2 and str(target) in err and "private key is not the one" in err
    assert len(err.strip().splitlines()) == 1
    # a command that unlocks the operator key stops too, before touching any port
    code, _, err = run("provision", "socket://127.0.0.1:9", "--kind", "water_meter",
                       "--site", "x")
    assert code == 2 and str(target) in err
    assert snapshot(keys.parent) == before


def test_unencrypted_private_key_is_compared_without_a_passphrase(keys):
    data = index(keys)
    op = entry(data, "operator")
    target = keys / f"operator-{op['kid']}.key.pem"
    target.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    assert_refused(keys, target, "private key is not the one keys.json names")


def test_missing_private_key(keys):
    data = index(keys)
    target = keys / f"fleet-{entry(data, 'fleet')['kid']}.key.pem"
    target.unlink()
    assert_refused(keys, target, "private key file is missing")


def test_index_epoch_or_status_edited_against_the_signed_epoch(keys):
    data = index(keys)
    data["epoch"] = 3                     # devices provisioned now would refuse epoch 3
    write_index(keys, data)
    assert_refused(keys, keys / "epochs" / "epoch-3.cbor", "KEY_EPOCH file is missing")
    data = index(keys)
    data["epoch"] = 2
    entry(data, "operator", "previous")["status"] = "revoked"
    write_index(keys, data)
    assert_refused(keys, keys / "epochs" / "epoch-2.cbor", "other keys than keys.json lists")


def test_epoch_file_replaced_by_an_older_one(keys):
    (keys / "epochs" / "epoch-2.cbor").write_bytes((keys / "epochs" / "epoch-1.cbor")
                                                   .read_bytes())
    code, out, _ = run("keys", "list", "--json")
    assert code == 2 and json.loads(out)["epoch_check"] != "ok"
    assert_refused(keys, keys / "epochs" / "epoch-2.cbor", "other keys than keys.json lists")


# --- fuzz: keys.json damaged in any way --------------------------------------------------------
FIELDS = ("role", "kid", "status", "created", "epoch", "public_key")
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=6)


def _wrong_for(field, value, original):
    """True if `value` in `field` makes the entry invalid (not merely different)."""
    if value == original or type(value) is not type(original):
        return value != original
    if field == "created":
        return False                      # any string is a valid date string here
    if field == "epoch":
        return value < 1 or value > 2     # the template's index is at epoch 2
    return True                           # a different role/kid/status/key: a finding too


@st.composite
def damaged_index(draw, original: bytes):
    """Bytes of a keys.json that edgekit must refuse."""
    text = original.decode()
    data = json.loads(text)
    how = draw(st.sampled_from(["drop-field", "retype-field", "drop-top", "retype-top",
                                "entries", "truncate", "garbage", "garbage-around"]))
    if how in ("drop-field", "retype-field"):
        e = data["keys"][draw(st.integers(0, len(data["keys"]) - 1))]
        field = draw(st.sampled_from(FIELDS))
        if how == "drop-field":
            del e[field]
        else:
            e[field] = draw(JSON_VALUES.filter(lambda v: _wrong_for(field, v, e[field])))
    elif how == "drop-top":
        del data[draw(st.sampled_from(["format", "epoch", "keys"]))]
    elif how == "retype-top":
        name = draw(st.sampled_from(["format", "epoch", "keys"]))
        data[name] = draw(JSON_VALUES.filter(lambda v: v != data[name]))
    elif how == "entries":
        change = draw(st.sampled_from(["empty", "drop-one", "duplicate", "not-object"]))
        if change == "empty":
            data["keys"] = []
        elif change == "drop-one":
            current = [i for i, e in enumerate(data["keys"]) if e["status"] == "current"]
            del data["keys"][draw(st.sampled_from(current))]
        elif change == "duplicate":
            data["keys"].append(dict(draw(st.sampled_from(data["keys"]))))
        else:
            data["keys"].insert(draw(st.integers(0, len(data["keys"]))),
                                draw(JSON_VALUES.filter(lambda v: not isinstance(v, dict))))
    elif how == "truncate":
        end = text.rstrip().rindex("}")
        return original[:draw(st.integers(0, end))]
    elif how == "garbage":
        return draw(st.binary(max_size=200))
    else:
        junk = draw(st.binary(min_size=1, max_size=40).filter(lambda b: b.strip()))
        return junk + original if draw(st.booleans()) else original + junk
    return json.dumps(data, indent=2).encode()


def test_fuzz_damaged_index_one_line_exit_2_nothing_written(template, tmp_path_factory,
                                                             monkeypatch):
    original = (template / "keys.json").read_bytes()
    monkeypatch.setenv("EDGEKIT_KEY_PASSPHRASE", PASS)
    seen = set()

    @settings(max_examples=150, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow])
    @given(damaged=damaged_index(original))
    def check(damaged):
        home = tmp_path_factory.mktemp("fuzz")
        shutil.copytree(template, home / "keys")
        (home / "keys" / "keys.json").write_bytes(damaged)
        monkeypatch.setenv("EDGEKIT_HOME", str(home))
        before = snapshot(home)
        for argv in (("keys", "list"), ("keys", "list", "--json"),
                     ("keys", "rotate", "operator", "--compromised")):
            code, _, err = run(*argv)
            lines = err.strip().splitlines()
            assert code == 2, (argv, damaged, err)
            assert len(lines) == 1 and "Traceback" not in err, (argv, damaged, err)
            assert str(home / "keys") in lines[0] and "keys.json" in lines[0], lines[0]
            assert "restore" in lines[0], lines[0]
            seen.add(lines[0].split("(")[0] if "damaged" in lines[0] else "audit")
        assert snapshot(home) == before
        shutil.rmtree(home)

    check()
    assert len(seen) >= 2     # both damage (shape) and audit (content) refusals were met
