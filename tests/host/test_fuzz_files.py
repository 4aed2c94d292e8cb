"""Damaged files never crash the host (issue 12): every file the CLI reads is mutated
(truncated, bytes flipped, a field missing or of the wrong type, huge numbers, binary
garbage) and fed to the real command. The command either works, or exits 2 with one line
naming the file and the problem; a refusal writes nothing (the whole tree is compared).

Hypothesis runs derandomized (the same examples on every machine) and small: the file runs in
well under a minute. A failure prints the shrunk example: add it to the parser's checks.
"""
import contextlib
import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekit import catalog as C
from edgekit.cli import main as cli_main
from edgekit.errors import EdgekitError
from edgekit.ota import bundle as bundle_mod
from edgekit.ota import manifest as man
from edgekit.ota.sign import sign_with_keystore
from edgekit.protocol import cbor
from edgekit.testing.fleet import TEST_PASSPHRASE, keystore_fixture

PASS = TEST_PASSPHRASE
keys = keystore_fixture()


def fuzz(n):
    """Derandomized, no example database, no deadline (the machine is shared)."""
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


# -- running the CLI and judging what it did ------------------------------------------------
def run(argv, env=None):
    """(exit status, stdout, stderr) of `edgekit ARGV` in this process. Any exception but
    SystemExit escapes, so a traceback fails the test with the shrunk example."""
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, env or {}), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        try:
            rc = cli_main([str(a) for a in argv])
        except SystemExit as exc:           # argparse: usage errors exit 2 themselves
            rc = exc.code
    return rc, out.getvalue(), err.getvalue()


def tree(root):
    root = Path(root)
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def assert_refused(rc, err, path, before, root):
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, (rc, err)
    assert len(lines) == 1 and lines[0].startswith("edgekit: error: "), err
    assert "Traceback" not in err
    assert Path(path).name in lines[0], f"the error does not name {path}: {lines[0]}"
    assert tree(root) == before, "a refused command wrote something"


@contextlib.contextmanager
def scratch():
    d = Path(tempfile.mkdtemp(prefix="ek-fuzz-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


# -- values of every type, for "wrong type in this field" -----------------------------------
HUGE = [0, -1, 1, (1 << 63) - 2, (1 << 63) - 1, 1 << 63, (1 << 64) - 1, -(1 << 64)]
scalars = (st.none() | st.booleans() | st.sampled_from(HUGE)
           | st.integers(min_value=-(1 << 64), max_value=(1 << 64) - 1)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
           | st.binary(max_size=24))
cbor_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.integers(0, 60) | st.text(max_size=4), inner,
                                             max_size=3), max_leaves=6)


class Damaged(bytes):
    """Damaged file content that shows as the damage done, not as kilobytes of bytes, in a
    failure report."""

    def __new__(cls, data, how):
        self = super().__new__(cls, data)
        self.how = how
        return self

    def __repr__(self):
        return f"<{len(self)} bytes: {self.how}>"


def raw_damage(data, draw):
    """Truncate, flip, insert or replace bytes of `data`."""
    how = draw(st.sampled_from(["truncate", "flip", "insert", "garbage", "empty"]))
    if how == "truncate":
        at = draw(st.integers(0, max(0, len(data) - 1)))
        return Damaged(data[:at], f"truncated at {at}")
    if how == "flip":
        out, where = bytearray(data), []
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(out) - 1))
            out[i] ^= draw(st.integers(1, 255))
            where.append(i)
        return Damaged(out, f"bytes flipped at {where}")
    if how == "insert":
        i = draw(st.integers(0, len(data)))
        junk = draw(st.binary(min_size=1, max_size=16))
        return Damaged(data[:i] + junk + data[i:], f"{junk!r} inserted at {i}")
    if how == "garbage":
        junk = draw(st.binary(max_size=300))
        return Damaged(junk, f"garbage {junk!r}")
    return Damaged(b"", "empty")


# == OTA bundles: ota inspect / sign / push ==================================================
@pytest.fixture(scope="module")
def ota(keys):
    """A small real bundle (app only), unsigned and signed, and the firmware signer."""
    built = bundle_mod.build("esp32", "water_meter", "1.0.0", seq=7, issued=1_800_000_000,
                             app_only=True)
    signed = sign_with_keystore(built, keys, PASS)
    return {"unsigned": built, "signed": signed, "signer": keys.signer("firmware", PASS),
            "keys": keys}


MANIFEST_KEYS = [C.K_OTA_SEQ, C.K_VERSION, C.K_BOARD, C.K_KIND, C.K_RUNTIME, C.K_POLICY,
                 C.K_DEADLINE, C.K_ISSUED, C.K_SIZE, C.K_FILES]
ENTRY_KEYS = [C.K_NAME, C.K_SIZE, C.K_DIGEST, C.K_ENCODING, C.K_XSIZE]


def _change(mapping, key, draw):
    if draw(st.booleans()):
        mapping.pop(key, None)
        return f"[{key!r}] deleted"
    mapping[key] = draw(cbor_values)
    return f"[{key!r}] = {mapping[key]!r}"[:200]


@st.composite
def damaged_bundle(draw, ota):
    which = draw(st.sampled_from(["unsigned", "signed"]))
    data = ota[which].to_bytes()
    level = draw(st.sampled_from(["raw", "doc", "payloads", "manifest", "entry", "seq"]))
    if level == "raw":
        damaged = raw_damage(data, draw)
        damaged.how = f"{which}: {damaged.how}"
        return damaged
    doc = cbor.loads(data)
    if level == "doc":
        how = "doc" + _change(doc, draw(st.sampled_from(["format", "manifest", "payloads",
                                                          "signed", "x"])), draw)
    elif level == "payloads":
        payloads = list(doc["payloads"])
        i = draw(st.integers(0, len(payloads) - 1))
        op = draw(st.sampled_from(["value", "drop", "add", "bytes"]))
        if op == "drop":
            del payloads[i]
        elif op == "add":
            payloads.append(draw(cbor_values))
        else:
            payloads[i] = draw(cbor_values if op == "value" else st.binary(max_size=64))
        doc["payloads"] = payloads
        how = f"payloads {op} at {i}: {payloads[i:i + 1]!r}"[:200]
    else:
        m = cbor.loads(doc["manifest"])
        if level == "manifest":
            how = "manifest" + _change(m, draw(st.sampled_from(MANIFEST_KEYS + [99])), draw)
        elif level == "entry":
            i = draw(st.integers(0, len(m[C.K_FILES]) - 1))
            how = f"file {i}" + _change(m[C.K_FILES][i], draw(st.sampled_from(
                ENTRY_KEYS + [99])), draw)
        else:
            m[C.K_OTA_SEQ] = draw(st.sampled_from(HUGE))
            how = f"seq {m[C.K_OTA_SEQ]}"
        doc["manifest"] = cbor.dumps(m)
        if "signed" in doc:         # signed again, so the checks past the signature run too
            doc["signed"] = man.sign(doc["manifest"], ota["signer"], 1)
    return Damaged(cbor.dumps(doc), f"{which}: {how}")


def _inspect_and_sign(ota, data, sign):
    with scratch() as root:
        path = root / "damaged.ekota"
        path.write_bytes(data)
        before = tree(root)
        rc, out, err = run(["ota", "inspect", path, "--keys", ota["keys"].path])
        assert "Traceback" not in err
        if rc == 2:
            assert_refused(rc, err, path, before, root)
        else:       # a readable bundle: the report, problems (exit 1) listed in it
            assert rc in (0, 1) and out.startswith(str(path)), (rc, out, err)
            assert (rc == 1) == ("problem:" in out or "INVALID" in out)
        assert tree(root) == before
        if not sign:
            return
        # sign with a copy of the key directory: a refusal must not even move its counter
        keydir = root / "keys"
        shutil.copytree(ota["keys"].path, keydir)
        before = tree(root)
        signed_out = root / "signed.ekota"
        rc, out, err = run(["ota", "sign", path, "--keys", keydir, "-o", signed_out],
                           env={"EDGEKIT_KEY_PASSPHRASE": PASS})
        if rc != 0:
            assert_refused(rc, err, path, before, root)
        else:
            assert signed_out.exists()


@fuzz(120)
@given(data=st.data())
def test_ota_inspect_survives_damaged_bundles(ota, data):
    _inspect_and_sign(ota, data.draw(damaged_bundle(ota)), sign=False)


@fuzz(40)
@given(data=st.data())
def test_ota_sign_survives_damaged_bundles(ota, data):
    _inspect_and_sign(ota, data.draw(damaged_bundle(ota)), sign=True)


@fuzz(15)
@given(data=st.data())
def test_ota_push_refuses_damaged_bundles_before_any_device(ota, data):
    with scratch() as root:
        path = root / "damaged.ekota"
        path.write_bytes(data.draw(damaged_bundle(ota)))
        before = tree(root)
        rc, _, err = run(["ota", "push", "emu:no-such-board", path, "--keys",
                          ota["keys"].path], env={"EDGEKIT_KEY_PASSPHRASE": PASS,
                                                  "EDGEKIT_HOME": str(root / "home")})
        if "no emulated board 'no-such-board'" in err:   # the bundle was fine: it got that far
            assert rc == 3 and len(err.strip().splitlines()) == 1, err
            assert tree(root) == before
        else:
            assert_refused(rc, err, path, before, root)


@pytest.mark.parametrize("name, change", [
    ("no manifest", lambda d: d.pop("manifest")),
    ("no payloads", lambda d: d.pop("payloads")),
    ("payloads 5", lambda d: d.update(payloads=5)),
    ("integer payloads", lambda d: d.update(payloads=[6000] * len(d["payloads"]))),
    ("huge integer payload", lambda d: d.update(payloads=[1 << 62] * len(d["payloads"]))),
    ("manifest not bytes", lambda d: d.update(manifest=[1, 2])),
    ("signed not bytes", lambda d: d.update(signed=5)),
])
def test_the_reported_bundle_crashes_are_one_line_errors(ota, tmp_path, name, change):
    doc = cbor.loads(ota["signed"].to_bytes())
    change(doc)
    path = tmp_path / "b.ekota"
    path.write_bytes(cbor.dumps(doc))
    before = tree(tmp_path)
    for argv in (["ota", "inspect", path], ["ota", "sign", path, "--keys", ota["keys"].path]):
        rc, _, err = run(argv, env={"EDGEKIT_KEY_PASSPHRASE": PASS})
        assert_refused(rc, err, path, before, tmp_path)
