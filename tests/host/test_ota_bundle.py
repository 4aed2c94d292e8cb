"""OTA bundles on the host: build (mpy-cross matching the board, deflate, manifest), sign with
the firmware key only, inspect/verify, and every way a bundle can be refused."""
import hashlib
import json
import subprocess
import zlib

import pytest

from edgekit import catalog as C
from edgekit import firmware_tree
from edgekit.cli import main as cli_main
from edgekit.errors import EdgekitError
from edgekit.keys.store import KeyStore
from edgekit.testing.fleet import TEST_PASSPHRASE, keystore_fixture
from edgekit.ota import bundle as bundle_mod
from edgekit.ota import manifest as man
from edgekit.ota.bundle import Bundle, BundleError
from edgekit.ota.sign import sign_bundle, sign_with_keystore, trusted_firmware_keys
from edgekit.protocol import cbor

PASS = TEST_PASSPHRASE


keys = keystore_fixture()


@pytest.fixture(scope="module")
def built():
    return bundle_mod.build("esp32", "water_meter", "1.2.0", seq=42, issued=1_800_000_000)


@pytest.fixture(scope="module")
def signed(built, keys):
    return sign_with_keystore(built, keys, PASS)


def test_manifest_lists_every_source_compiled_by_mpy_cross(built, tmp_path):
    m = built.manifest
    assert (m[C.K_OTA_SEQ], m[C.K_VERSION], m[C.K_BOARD], m[C.K_KIND]) == \
        (42, "1.2.0", "esp32", "water_meter")
    assert m[C.K_RUNTIME] == "1.29.0" and m[C.K_POLICY] == "test-confirm"
    names = [f["name"] for f in built.files]
    core = [p.stem + ".mpy" for d in firmware_tree.core_dirs() for p in d.glob("*.py")]
    expected = sorted(core
                      + ["catalog.mpy", "water_meter.mpy", "water_meter_schema.mpy",
                         "build_info.mpy"])
    assert names == expected
    # a digest is the SHA-256 of what mpy-cross makes of the source, compiled independently
    out = tmp_path / "agent.mpy"
    subprocess.run([bundle_mod.mpy_cross_path(), "-s", "agent.py", "-o", str(out),
                    str(firmware_tree.module_path("agent"))], check=True)
    agent = next(f for f in built.files if f["name"] == "agent.mpy")
    assert agent["digest"] == hashlib.sha256(out.read_bytes()).digest()
    assert m[C.K_SIZE] == sum(f["size"] for f in built.files)


def test_deflate_only_where_it_saves_and_round_trips(built):
    enc = {f["name"]: f for f in built.files}
    assert enc["cbor.mpy"]["encoding"] == "deflate" and enc["cbor.mpy"]["xsize"] < \
        enc["cbor.mpy"]["size"]
    assert enc["build_info.mpy"]["encoding"] is None     # tiny: compression would not pay
    for f in built.files:
        data = built.installed(f["index"])
        assert hashlib.sha256(data).digest() == f["digest"] and len(data) == f["size"]
        if f["encoding"]:
            # 1 KB window: what the device's decompressor is sized for
            assert built.payloads[f["index"]][0] & 0xF0 == (bundle_mod.DEFLATE_WBITS - 8) << 4
    assert len(built.stream()) == man.stream_size(built.manifest) < built.manifest[C.K_SIZE]


def test_builds_are_reproducible_so_deltas_work(built):
    again = bundle_mod.build("esp32", "water_meter", "1.2.1", seq=43)
    same = {f["name"]: f["digest"] for f in again.files}
    differ = [f["name"] for f in built.files if same[f["name"]] != f["digest"]]
    assert differ == ["build_info.mpy"]


def test_app_only_bundle_leaves_the_library_to_the_board_image():
    b = bundle_mod.build("esp32", "water_meter", "1.2.0", seq=44, app_only=True)
    assert [f["name"] for f in b.files] == ["build_info.mpy", "water_meter.mpy",
                                            "water_meter_schema.mpy"]
    with pytest.raises(BundleError, match="unknown device kind 'no_such_kind'"):
        bundle_mod.default_sources("no_such_kind", app_only=True)


def test_runtime_mismatch_is_refused(tmp_path):
    board = dict(bundle_mod.load_board("esp32"), runtime="1.28.0")
    with pytest.raises(BundleError, match=r"mpy-cross is MicroPython 1\.29\.0 but board "
                                          r"esp32 runs 1\.28\.0"):
        bundle_mod.build(board, "water_meter", "1.0.0")
    fake = tmp_path / "mpy-cross"
    fake.write_text("#!/bin/sh\necho 'MicroPython v1.22.2 on 2024-02-22; mpy-cross emitting "
                    "mpy v6.2'\n")
    fake.chmod(0o755)
    with pytest.raises(BundleError, match=r"1\.22\.2 but board esp32 runs 1\.29\.0"):
        bundle_mod.build("esp32", "water_meter", "1.0.0", mpy_cross=str(fake))


@pytest.mark.parametrize("kwargs, message", [
    (dict(kind="toaster"), "unknown device kind"),
    (dict(version="1.2"), "MAJOR.MINOR.PATCH"),
    (dict(board="pdp11"), "no board definition"),
    (dict(seq=0), "sequence number"),
])
def test_bad_build_arguments_are_named(kwargs, message):
    args = dict(board="esp32", kind="water_meter", version="1.0.0", seq=1)
    args.update(kwargs)
    with pytest.raises(EdgekitError, match=message):
        bundle_mod.build(**args)


def test_signed_bundle_round_trips_and_verifies(signed, keys, tmp_path):
    path = signed.save(tmp_path / "b.ekota")
    again = Bundle.load(path)
    assert again.signed == signed.signed and again.stream() == signed.stream()
    kid = again.verify(trusted_firmware_keys(keys))
    assert kid.hex() == keys.current("firmware")["kid"]
    assert len(again.signed) <= C.OTA_MANIFEST_MAX


def test_only_the_firmware_key_signs(built, keys):
    with pytest.raises(BundleError, match="firmware key, not the operator key"):
        sign_bundle(built, keys.signer("operator", PASS), 1)


def test_another_fleets_firmware_key_is_not_trusted(built, keys, tmp_path):
    other = KeyStore(tmp_path / "other")
    other.init(PASS)
    b = sign_with_keystore(built, other, PASS)
    with pytest.raises(EdgekitError, match="not a trusted firmware key"):
        b.verify(trusted_firmware_keys(keys))


def test_tampered_payload_is_caught(signed, keys):
    payloads = list(signed.payloads)
    i = next(f["index"] for f in signed.files if f["encoding"] is None)
    payloads[i] = bytes([payloads[i][0] ^ 1]) + payloads[i][1:]
    b = Bundle(signed.manifest_payload, payloads, signed.signed)
    with pytest.raises(BundleError, match="does not match the manifest's SHA-256"):
        b.verify(trusted_firmware_keys(keys))
    with pytest.raises(BundleError, match="content does not match"):
        sign_bundle(b, keys.signer("firmware", PASS), 1)     # never sign what does not match


def test_tampered_manifest_fails_its_signature(signed, keys):
    sign1 = cbor.loads(signed.signed)
    protected, unprot, payload, sig = sign1.value
    m = cbor.loads(payload)
    m[C.K_OTA_SEQ] += 1000
    forged = cbor.dumps(cbor.Tag(18, [protected, unprot, cbor.dumps(m), sig]))
    with pytest.raises(EdgekitError, match="signature does not verify"):
        man.open_signed(forged, trusted_firmware_keys(keys))
    # and a bundle whose manifest differs from what was signed is refused on load
    doc = cbor.loads(signed.to_bytes())
    doc["manifest"] = cbor.dumps(m)
    with pytest.raises(BundleError, match="signed manifest differs"):
        Bundle.from_bytes(cbor.dumps(doc))


def _entry(name, **kw):
    f = {"name": name, "size": 3, "digest": bytes(32)}
    f.update(kw)
    return f


@pytest.mark.parametrize("files, message", [
    ([_entry("../boot.py")], "file name"),
    ([_entry("lib/x.mpy")], "file name"),
    ([_entry(".hidden")], "file name"),
    ([_entry("a.mpy"), _entry("a.mpy")], "listed twice"),
    ([], "1..64 files"),
    ([_entry("f%02d" % i) for i in range(65)], "1..64 files"),
])
def test_manifest_builder_refuses_bad_files(files, message):
    with pytest.raises(man.ManifestError, match=message):
        man.build(1, "1.0.0", "esp32", "water_meter", "1.29.0", files, 0)


@pytest.mark.parametrize("mutate, message", [
    (lambda m: m[C.K_FILES].reverse(), "sorted by name"),
    (lambda m: m[C.K_FILES][0].__setitem__(C.K_DIGEST, b"\0" * 31), "32 bytes"),
    (lambda m: m[C.K_FILES][0].__setitem__(C.K_ENCODING, "lzma"), "encoding"),
    (lambda m: m.__setitem__(C.K_POLICY, "yolo"), "install policy"),
    (lambda m: m.pop(C.K_BOARD), "board"),
])
def test_manifest_reader_refuses_malformed(mutate, message):
    m = man.build(1, "1.0.0", "esp32", "water_meter", "1.29.0",
                  [_entry("a.mpy"), _entry("b.mpy")], 0)
    mutate(m)
    with pytest.raises(man.ManifestError, match=message):
        man.decode(cbor.dumps(m))


def test_stream_layout_is_files_in_manifest_order(built):
    at = 0
    for f in built.files:
        assert f["start"] == at and f["end"] == at + len(built.payloads[f["index"]])
        at = f["end"]
        if f["encoding"]:
            assert zlib.decompress(built.stream()[f["start"]:f["end"]], 10) == \
                built.installed(f["index"])


def test_cli_build_sign_inspect(tmp_path, monkeypatch, capsys, keys):
    monkeypatch.setenv("EDGEKIT_KEY_PASSPHRASE", PASS)
    out = tmp_path / "wm.ekota"
    assert cli_main(["ota", "build", "--board", "esp32", "--kind", "water_meter",
                     "--version", "2.0.0", "--seq", "9", "-o", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["signed"] is False
    assert cli_main(["ota", "inspect", str(out), "--keys", str(keys.path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["signature"] == "unsigned"
    assert cli_main(["ota", "sign", str(out), "--keys", str(keys.path)]) == 0
    capsys.readouterr()
    assert cli_main(["ota", "inspect", str(out), "--keys", str(keys.path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["signature"] == "valid" and shown["payloads"] == "ok" and shown["seq"] == 9
    # a damaged file on disk: inspect says what and exits 1
    b = Bundle.load(out)
    payloads = list(b.payloads)
    payloads[0] = payloads[0][:-1] + bytes([payloads[0][-1] ^ 0xFF])
    Bundle(b.manifest_payload, payloads, b.signed).save(out)
    assert cli_main(["ota", "inspect", str(out), "--keys", str(keys.path)]) == 1
    assert "problem: file agent.mpy" in capsys.readouterr().out
