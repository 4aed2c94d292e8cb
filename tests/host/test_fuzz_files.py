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
    # one line: "edgekit: error: ...", or under --json one JSON object
    assert len(lines) == 1, err
    if lines[0].startswith("{"):
        obj = json.loads(lines[0])
        assert obj["exit_status"] == 2 and obj["error"] == "invalid_input", obj
    else:
        assert lines[0].startswith("edgekit: error: "), err
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


# == provisioning configs: provision --config =================================================
CONFIG_TOML = ('litres_per_pulse = 2.5\nsample_s = 60\nprivacy = "fine"\nauto_shutoff = true\n'
               'billing_day = 15\n')
CONFIG = {"litres_per_pulse": 2.5, "sample_s": 60, "privacy": "fine", "auto_shutoff": True,
          "billing_day": 15}
toml_values = (st.booleans() | st.sampled_from(HUGE + [10 ** 30, -10 ** 400])
               | st.integers() | st.floats() | st.text(max_size=10)
               | st.lists(st.integers(), max_size=3))


def toml_literal(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(value), repr(value))
    if isinstance(value, str):
        return json.dumps(value)        # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_literal(v)}"
                                for k, v in value.items()) + " }"
    return str(value)


@st.composite
def damaged_config(draw):
    """(file suffix, damaged content)."""
    suffix = draw(st.sampled_from([".toml", ".json"]))
    level = draw(st.sampled_from(["raw", "value", "key", "deep", "number"]))
    values = dict(CONFIG)
    if level == "raw":
        text = CONFIG_TOML if suffix == ".toml" else json.dumps(CONFIG)
        return suffix, raw_damage(text.encode(), draw)
    if level == "value":
        key = draw(st.sampled_from(sorted(CONFIG)))
        values[key] = draw(toml_values)
        how = f"{key} = {values[key]!r}"
    elif level == "key":
        key = draw(st.text(min_size=1, max_size=8))
        values[key] = 1
        how = f"key {key!r}"
    elif level == "number":     # digits past what a float or Python's int() takes
        key = draw(st.sampled_from(sorted(CONFIG)))
        values[key] = None
        how = f"{key} = a long number"
    else:
        how = "deep nesting"
    if suffix == ".json":
        text = json.dumps(values)
        if level == "number":
            text = text.replace("null", "9" * draw(st.sampled_from([30, 400, 5000])))
        elif level == "deep":
            text = '{"sample_s": ' + "[" * 100000 + "]" * 100000 + "}"
    else:
        if level == "deep":
            text = "sample_s = " + "[" * 5000 + "]" * 5000 + "\n"
        else:
            text = "".join(f"{json.dumps(k) if level == 'key' else k} = "
                           + ("9" * draw(st.sampled_from([30, 400, 5000])) if v is None
                              else toml_literal(v)) + "\n" for k, v in values.items())
    return suffix, Damaged(text.encode(), how)


@fuzz(150)
@given(case=damaged_config())
def test_provision_config_survives_damaged_files(case):
    suffix, content = case
    with scratch() as root:
        path = root / f"site{suffix}"
        path.write_bytes(content)
        before = tree(root)
        # no key directory: a config that passes stops at the "no keys" message
        rc, _, err = run(["provision", "socket://127.0.0.1:9", "--kind", "water_meter",
                          "--site", "north", "--config", path, "--keys", root / "nokeys",
                          "--registry", root / "reg.sqlite"],
                         env={"EDGEKIT_HOME": str(root / "home")})
        if "no key directory" in err or "no keys" in err:
            assert rc == 2 and len(err.strip().splitlines()) == 1, err
            assert tree(root) == before
        else:
            assert_refused(rc, err, path, before, root)


def test_binary_config_is_a_one_line_error(tmp_path):
    path = tmp_path / "site.toml"
    path.write_bytes(bytes(range(256)))
    rc, _, err = run(["provision", "socket://127.0.0.1:9", "--kind", "water_meter", "--site",
                      "north", "--config", path], env={"EDGEKIT_HOME": str(tmp_path / "h")})
    assert_refused(rc, err, path, {"site.toml": hashlib.sha256(bytes(range(256))).hexdigest()},
                   tmp_path)
    assert "not UTF-8 text" in err


# == the registry database: devices list / show ===============================================
@pytest.fixture(scope="module")
def registry_file(tmp_path_factory):
    """A real registry with two devices and their events, closed (WAL folded back in)."""
    from edgekit.registry.db import Registry
    path = tmp_path_factory.mktemp("reg") / "registry.sqlite"
    with Registry(path) as reg:
        for i, kind in enumerate(("water_meter", "smart_bin")):
            reg.upsert_device(f"dev-{i}", kind=kind, board="esp32", site="north",
                              public_key=bytes([i]) * 32, location=(52.3, 4.9))
            reg.touch(f"dev-{i}", 10 + i, fw="1.0.0")
            reg.record_event(f"dev-{i}", "provisioned", {"site": "north", "n": i})
    return Damaged(path.read_bytes(), "the undamaged registry")


@st.composite
def damaged_registry(draw, data):
    how = draw(st.sampled_from(["raw", "page", "detail"]))
    if how == "raw":
        return raw_damage(data, draw)
    if how == "detail":     # a byte of an event's JSON detail: SQLite cannot see that damage
        at = data.index(b'"n": 1') + draw(st.integers(-10, 12))
        out = bytearray(data)
        out[at] = draw(st.sampled_from(b"]}{[,:x\xff\x00"))
        return Damaged(bytes(out), f"event detail byte {at} changed")
    # bytes flipped inside one page past the header: the file still opens as SQLite
    page = draw(st.integers(1, len(data) // 4096 - 1))
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        out[page * 4096 + draw(st.integers(0, 4095))] ^= draw(st.integers(1, 255))
    return Damaged(bytes(out), f"page {page} damaged")


@fuzz(100)
@given(data=st.data())
def test_registry_commands_survive_a_damaged_database(registry_file, data):
    content = data.draw(damaged_registry(registry_file))
    with scratch() as root:
        path = root / "registry.sqlite"
        path.write_bytes(content)
        before = tree(root)
        for argv in (["devices", "list", "--json", "--keys", root / "nokeys"],
                     ["devices", "show", "dev-1", "--json"]):
            rc, out, err = run(argv + ["--registry", path],
                               env={"EDGEKIT_HOME": str(root / "home")})
            if rc == 0:
                json.loads(out)
                continue
            if "no device 'dev-1'" in err:      # the damage lost that row: a valid answer
                assert rc == 2 and len(err.strip().splitlines()) == 1, err
            else:
                assert_refused(rc, err, path, before, root)


# == HIL files: bench rigs (pytest --rig) and scenarios (hil_tests/scenarios) ==================
def toml_document(doc):
    """TOML text for `doc`: top-level tables, and arrays of tables as [[name]]."""
    out = []
    for name, value in doc.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for table in value:
                out.append(f"[[{name}]]")
                out += [f"{json.dumps(k)} = {toml_literal(v)}" for k, v in table.items()]
        elif isinstance(value, dict):
            out.append(f"[{name}]")
            out += [f"{json.dumps(k)} = {toml_literal(v)}" for k, v in value.items()]
        else:
            out.insert(0, f"{json.dumps(name)} = {toml_literal(value)}")
    return "\n".join(out) + "\n"


toml_any = st.recursive(toml_values, lambda inner: st.dictionaries(
    st.text(max_size=6), inner, max_size=3), max_leaves=5)


@st.composite
def damaged_toml(draw, doc):
    """A TOML document `doc` damaged: raw bytes, or one entry (at any depth) deleted or
    replaced by a value of any type."""
    if draw(st.integers(0, 4)) == 0:
        return raw_damage(toml_document(doc).encode(), draw)
    doc = json.loads(json.dumps(doc))
    node, path = doc, []
    while True:
        keys = list(range(len(node))) if isinstance(node, list) else list(node)
        if not keys:
            break
        key = draw(st.sampled_from(keys))
        path.append(key)
        child = node[key]
        if not isinstance(child, (dict, list)) or draw(st.booleans()):
            if draw(st.booleans()) and isinstance(node, dict):
                del node[key]
                how = f"{path} deleted"
            else:
                node[key] = draw(toml_any)
                how = f"{path} = {node[key]!r}"
            break
        node = child
    else:
        how = "unchanged"
    try:
        text = toml_document(doc)
    except Exception:
        text = ""
    return Damaged(text.encode(), how[:200])


def assert_file_error(exc, path):
    text = str(exc)
    assert isinstance(exc, EdgekitError), repr(exc)
    assert "\n" not in text and path.name in text, text


RIG = {"rig": {"port": "/dev/ttyACM1"},
       "stimuli": {"flow_lpm": {"channel": "pulse0", "scale": 1.0},
                   "tamper": {"channel": "relay2"}},
       "lines": {"power": "relay0", "reset": "relay1"}}


@fuzz(150)
@given(content=damaged_toml(RIG))
def test_rig_files_load_or_say_what_is_wrong(content):
    from edgekit.hil.rig import Rig
    with scratch() as root:
        path = root / "bench.toml"
        path.write_bytes(content)
        try:
            rig = Rig.load(path)
        except EdgekitError as exc:
            assert_file_error(exc, path)
            return
        # what the rig's commands will use is well formed
        for entry in rig.stimuli.values():
            assert isinstance(entry["channel"], str) and " " not in entry["channel"]
            float(entry.get("scale", 1.0) * 1.0)
        assert all(isinstance(c, str) and c.strip() == c and c for c in rig.lines.values())
        assert rig.port is None or isinstance(rig.port, str)


SCENARIO = {"scenario": {"name": "leak", "kind": "water_meter",
                         "config": {"leak_window_h": 6, "litres_per_pulse": 0.1},
                         "rtc": 1767225600},
            "step": [{"set": {"leak_lpm": 0.05}}, {"advance": "8h"},
                     {"expect_event": {"name": "leak", "active": True, "min_duration": "6h"}},
                     {"command": {"name": "read"}, "expect": {"key": "volume_ml", "min": 1}},
                     {"expect_telemetry": {"name": "volume", "min": 23, "max": 28}},
                     {"powercut": True}, {"sync_time": 1767225600}]}


@fuzz(200)
@given(content=damaged_toml(SCENARIO))
def test_scenario_files_load_or_say_what_is_wrong(content):
    from edgekit.hil import scenario
    with scratch() as root:
        path = root / "leak.toml"
        path.write_bytes(content)
        try:
            head, steps = scenario.load(path)
        except scenario.ScenarioFileError as exc:
            assert_file_error(exc, path)
            return
        # what the runner will do with it cannot fail on a type
        from edgekit.appschema import KINDS
        assert isinstance(head["name"], str) and head["kind"] in KINDS
        for step in steps:
            kind = next(k for k in step if k in scenario.STEP_KINDS)
            if kind == "advance":
                assert 0 <= scenario.duration(step[kind]) < float("inf")
            if kind == "expect_event" and "min_duration" in step[kind]:
                scenario.duration(step[kind]["min_duration"])
            spec = step.get("expect") if kind == "command" else step[kind]
            if kind in ("expect_telemetry", "command") and spec:
                try:        # a reading of 0 against the spec: it may fail, not crash
                    scenario._in_range(0, spec, "reading")
                except scenario.ScenarioError:
                    pass


def test_a_binary_scenario_or_rig_is_one_line(tmp_path):
    from edgekit.hil import scenario
    from edgekit.hil.rig import Rig
    path = tmp_path / "s.toml"
    path.write_bytes(bytes(range(256)))
    for load in (scenario.load, Rig.load):
        with pytest.raises(EdgekitError) as info:
            load(path)
        assert_file_error(info.value, path)


# == CSV drives for the emulator's world: emu drive ===========================================
CSV_BASE = {None: "t,battery_mv\n0,3700\n10,3600\n20,3500\n",
            "water_meter": "t,flow_lpm,tamper\n0,6,false\n60,0.5,true\n3600,0,off\n"}
NASTY_CELLS = ["nan", "inf", "-inf", "1e999", "-1e999", "-5", "", " ", "true", "0x10", "1_000",
               "9" * 400, "1e308", "-0", "3700\x00", "\u00e9", "NaN", "t"]


@st.composite
def damaged_csv(draw, kind):
    text = CSV_BASE[kind]
    how = draw(st.sampled_from(["raw", "cell", "row", "header"]))
    if how == "raw":
        return raw_damage(text.encode(), draw)
    rows = [line.split(",") for line in text.strip().split("\n")]
    if how == "cell":
        r = draw(st.integers(1, len(rows) - 1))
        c = draw(st.integers(0, len(rows[0]) - 1))
        rows[r][c] = draw(st.sampled_from(NASTY_CELLS) | st.text(max_size=8))
        how = f"row {r} column {c} = {rows[r][c]!r}"
    elif how == "row":
        r = draw(st.integers(1, len(rows) - 1))
        rows[r] = rows[r] + ["1"] if draw(st.booleans()) else rows[r][:-1]
        how = f"row {r} has {len(rows[r])} fields"
    else:
        c = draw(st.integers(0, len(rows[0]) - 1))
        rows[0][c] = draw(st.sampled_from(["", "time", "nosuch", rows[0][-1], "T"]))
        how = f"header column {c} = {rows[0][c]!r}"
    return Damaged("\n".join(",".join(r) for r in rows).encode("utf-8", "surrogatepass"), how)


@pytest.fixture(scope="module")
def board_json():
    from edgekit.paths import BOARDS_DIR
    return json.loads((BOARDS_DIR / "esp32.json").read_text())


@fuzz(200)
@given(data=st.data())
def test_world_csv_drive_schedules_or_says_what_is_wrong(board_json, data):
    """The parser the supervisor runs for `emu drive`, on each world it drives: damaged text
    is one WorldError line, and what it accepts the world can run through."""
    from edgekit.emu.world import WorldError
    from edgekit.emu.worlds import make_world
    kind = data.draw(st.sampled_from(sorted(CSV_BASE, key=str)))
    content = data.draw(damaged_csv(kind))
    world = make_world(kind, board_json)
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return                       # the CLI refuses it before the supervisor (test below)
    try:
        world.drive_csv(1000.0, text)
    except WorldError as exc:
        assert "\n" not in str(exc), str(exc)
        return
    world.advance_to(1000.0 + 400 * 86400 * 1000.0)    # through every scheduled row
    snap = world.snapshot()
    assert all(isinstance(v, bool) or (v == v and abs(v) != float("inf"))
               for v in snap["values"].values()), snap["values"]


@pytest.fixture(scope="module")
def emu_home():
    """A supervisor with one bare board (no firmware: nothing but the world is needed)."""
    home = Path(tempfile.mkdtemp(prefix="ekfz-", dir="/tmp"))
    env = {"EDGEKIT_HOME": str(home)}
    rc, out, err = run(["emu", "start", "--board", "esp32", "--bare", "--json"], env=env)
    assert rc == 0, err
    yield env, json.loads(out)["id"]
    run(["emu", "stop", "--all"], env=env)
    shutil.rmtree(home, ignore_errors=True)


@fuzz(40)
@given(data=st.data())
def test_emu_drive_survives_damaged_csv_files(emu_home, data):
    env, board = emu_home
    content = data.draw(damaged_csv(None))
    with scratch() as root:
        path = root / "drive.csv"
        path.write_bytes(content)
        before = tree(root)
        rc, out, err = run(["emu", "drive", board, path], env=env)
        if rc != 0:
            lines = err.strip().splitlines()
            assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
            assert path.name in lines[0], lines[0]
        else:
            assert "rows scheduled" in out
        assert tree(root) == before
    rc, out, err = run(["emu", "world", board, "--json"], env=env)   # the board still answers
    assert rc == 0, err


# == OTA campaigns: their state lives in the registry file (ota campaign status) ==============
@fuzz(40)
@given(data=st.data())
def test_campaign_status_survives_damaged_stored_state(ota, registry_file, data):
    from edgekit.ota.campaign_db import CampaignStore
    from edgekit.registry.db import Registry
    column = data.draw(st.sampled_from(["stages", "result"]))
    stored = data.draw(st.sampled_from(["", "{", "null", "5", '"x"', "[[1]]", "[[1, 2]]",
                                        '[["a", true]]', "[]", "{}", "[[1, true]]"])
                       | st.text(max_size=12))
    with scratch() as root:
        path = root / "registry.sqlite"
        path.write_bytes(registry_file)
        with Registry(path) as reg:
            store = CampaignStore(reg)
            store.create("c1", root / "b.ekota", ota["signed"], [[1, False], [100, True]], 0.0,
                         ["dev-0", "dev-1"])
            table = "ota_campaigns" if column == "stages" else "ota_campaign_devices"
            reg._db.execute(f"UPDATE {table} SET {column} = ?", (stored,))   # the damage
        before = tree(root)
        rc, out, err = run(["ota", "campaign", "status", "c1", "--registry", path, "--json"])
        if rc == 0:
            json.loads(out)
        else:
            assert_refused(rc, err, path, before, root)


# == the OTA build record: ota build ($EDGEKIT_HOME/ota/builds.json) ===========================
BUILDS = {"version": 1, "last": {"esp32/water_meter": {"seq": 4, "version": "1.0.0",
                                                       "file": "/tmp/wm.ekota"}}}


@st.composite
def damaged_record(draw):
    if draw(st.booleans()):
        return raw_damage(json.dumps(BUILDS).encode(), draw)
    doc = json.loads(json.dumps(BUILDS))
    entry = doc["last"]["esp32/water_meter"]
    where = draw(st.sampled_from(["doc", "last", "entry"]))
    target = {"doc": doc, "last": doc["last"], "entry": entry}[where]
    key = draw(st.sampled_from(sorted(target) + ["x"]))
    target[key] = draw(st.sampled_from(HUGE + [None, "5", [], {}, 1.5, True]))
    return Damaged(json.dumps(doc).encode(), f"{where}[{key!r}] = {target[key]!r}")


@fuzz(25)
@given(content=damaged_record())
def test_ota_build_survives_a_damaged_build_record(content):
    with scratch() as root:
        record = root / "ota" / "builds.json"
        record.parent.mkdir()
        record.write_bytes(content)
        before = tree(root)
        rc, out, err = run(["ota", "build", "--board", "esp32", "--kind", "water_meter",
                            "--version", "1.0.0", "--seq", "5", "--app-only", "-o",
                            root / "b.ekota"], env={"EDGEKIT_HOME": str(root)})
        if rc == 0:
            assert (root / "b.ekota").exists()
        else:
            assert_refused(rc, err, record, before, root)
