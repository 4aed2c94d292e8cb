"""Host-side decisions of `edgekit flash`: the image, the plan, the target checks, the heap."""
import hashlib
import json
import types

import pytest

from edgekit import board_defs as boards
from edgekit.flash import heap, image as image_mod, installer
from edgekit.flash.device import DeviceInfo, TargetError, check_target
from edgekit.flash.image import ImageError, ImageFile
from edgekit.ota import bundle as bundle_mod
from edgekit.paths import BOARDS_DIR, FIRMWARE_DIR


@pytest.fixture(scope="module")
def esp32_image():
    return image_mod.build("esp32", "water_meter")


def fake_image(paths):
    files = [ImageFile(p, p.encode() * 10) for p in paths]
    return types.SimpleNamespace(files=sorted(files, key=lambda f: (f.path == "/main.py",
                                                                    f.path)))


def have_of(img, changed=()):
    return {f.path: (f.size, "0" * 64 if f.path in changed else f.digest.hex())
            for f in img.files}


# -- the image --------------------------------------------------------------------------
def test_image_is_the_ota_build_plus_the_board_image(esp32_image):
    img = esp32_image
    paths = [f.path for f in img.files]
    assert paths[-1] == "/main.py"                       # written last
    assert {"/boot.py", "/board.json", "/lib/hal.mpy", "/lib/hal_common.mpy",
            "/lib/hal_machine.mpy", "/lib/build_info.mpy", "/lib/water_meter.mpy",
            "/lib/runtime.mpy"} <= set(paths)
    ota = bundle_mod.build("esp32", "water_meter", img.version, seq=1, issued=0)
    for f in ota.files:                                  # the same bytes as the OTA build
        mine = next(x for x in img.files if x.path == "/lib/" + f["name"])
        assert mine.digest == f["digest"]
    board = json.loads(next(f for f in img.files if f.path == "/board.json").data)
    full = json.loads((BOARDS_DIR / "esp32.json").read_text())
    assert "rom_banner" not in board and "runtime_image" not in board and "power" not in board
    assert board["pins"].keys() == full["pins"].keys() and board["name"] == "esp32"
    assert board["pins"]["flow"] == full["pins"]["flow"]
    assert "note" in full["pins"]["temp_alert"] and "note" not in board["pins"]["temp_alert"]
    assert board == boards.device_view(full)
    boot = next(f for f in img.files if f.path == "/boot.py")
    assert boot.data == (FIRMWARE_DIR / "boot.py").read_bytes()
    assert img.mpy_header[:2] == b"M\x06"
    assert img.boot_modules() == ["hal", "runtime", "water_meter", "ota", "otaslots"]


def test_image_files_deflate_only_when_it_pays(esp32_image):
    for f in esp32_image.files:
        if f.deflated:
            assert len(f.wire) < f.size and image_mod.inflate(f.wire) == f.data
        else:
            assert f.wire == f.data
    assert esp32_image.wire_bytes < 0.8 * esp32_image.installed_bytes


def test_builds_are_reproducible_so_reruns_skip(esp32_image):
    again = image_mod.build("esp32", "water_meter")
    assert [(f.path, f.digest) for f in again.files] == \
        [(f.path, f.digest) for f in esp32_image.files]


def test_a_bundle_for_another_board_is_refused(tmp_path):
    apps = bundle_mod.default_sources("water_meter", app_only=True)
    path = bundle_mod.build("rp2040", "water_meter", "1.0.0", seq=3, sources=apps).save(
        tmp_path / "wm-rp2040.ekota")
    with pytest.raises(ImageError, match="built for board rp2040, not esp32"):
        image_mod.from_bundle(path, "esp32")
    assert image_mod.from_bundle(path, "rp2040").board == "rp2040"


# -- the plan ---------------------------------------------------------------------------
LIB = ["/boot.py", "/board.json", "/lib/a.mpy", "/lib/b.mpy", "/main.py"]


def test_plan_for_a_bare_board_sends_everything_main_last():
    img = fake_image(LIB)
    plan = installer.make_plan(img, {}, set())
    assert [f.path for f in plan.send] == ["/board.json", "/boot.py", "/lib/a.mpy",
                                           "/lib/b.mpy", "/main.py"]
    assert plan.remove_files == [] and plan.remove_dirs == [] and plan.changes


def test_plan_skips_identical_files_and_resends_changed_ones():
    img = fake_image(LIB)
    plan = installer.make_plan(img, have_of(img, changed=["/lib/b.mpy"]), {"/lib"})
    assert [f.path for f in plan.send] == ["/lib/b.mpy", "/main.py"]
    assert plan.remove_files == ["/main.py"]             # first out, last back in
    assert {f.path for f in plan.keep} == {"/boot.py", "/board.json", "/lib/a.mpy"}


def test_plan_of_a_complete_install_changes_nothing():
    img = fake_image(LIB)
    plan = installer.make_plan(img, have_of(img), {"/lib"})
    assert not plan.changes and plan.send == [] and len(plan.keep) == len(LIB)


def test_plan_removes_everything_not_in_the_image_deepest_dirs_first():
    img = fake_image(LIB)
    have = dict(have_of(img), **{"/lib/~a.mpy": (3, ""), "/ek/identity": (40, ""),
                                  "/slots/a/x.mpy": (9, ""), "/data/t/0": (4, "")})
    plan = installer.make_plan(img, have, {"/lib", "/ek", "/slots", "/slots/a", "/data",
                                           "/data/t"})
    assert plan.remove_files == ["/main.py", "/data/t/0", "/ek/identity", "/lib/~a.mpy",
                                 "/slots/a/x.mpy"]
    assert plan.remove_dirs == ["/data/t", "/slots/a", "/data", "/ek", "/slots"]
    assert [f.path for f in plan.send] == ["/main.py"]


def test_space_check_counts_blocks_and_what_is_freed():
    img = fake_image(["/lib/a.mpy", "/main.py"])
    big = ImageFile("/lib/big.mpy", b"x" * 40000)
    img.files.insert(0, big)
    plan = installer.make_plan(img, {}, set())
    info = DeviceInfo({"fs_block": 4096, "fs_free": 4096 * 20})
    installer.check_space(plan, {}, info)                # 11 + 2 + 2 blocks
    tight = DeviceInfo({"fs_block": 4096, "fs_free": 4096 * 10})
    with pytest.raises(TargetError, match="needs 60 KB of flash, 40 KB are free"):
        installer.check_space(plan, {}, tight)
    have = {"/old.bin": (4096 * 30, "")}
    plan2 = installer.make_plan(img, have, set())
    installer.check_space(plan2, have, tight)            # removing /old.bin makes room


# -- target checks ----------------------------------------------------------------------
def info(**kw):
    base = {"platform": "esp32", "version": [1, 29, 0], "machine": "Generic ESP32 module "
            "with ESP32", "mpy": 0x0306 | (10 << 10), "emulated": None, "board_json": None,
            "provisioned": False, "sha256": True, "deflate": True, "maxsize": 2 ** 31 - 1}
    base.update(kw)
    return DeviceInfo(base)


def test_target_checks_accept_the_right_board(esp32_image):
    check_target(info(), esp32_image)
    check_target(info(platform="linux", machine="linux", emulated="esp32",
                      maxsize=2 ** 63 - 1), esp32_image)


@pytest.mark.parametrize("kw, wipe, message", [
    ({"platform": "linux", "emulated": "rp2040"}, False, "emulated rp2040 board; the image "
                                                         "is for esp32"),
    ({"platform": "rp2", "machine": "Raspberry Pi Pico W with RP2040"}, False,
     "runs MicroPython for 'rp2'"),
    ({"machine": "Generic ESP32S3 module with ESP32S3"}, False, "is a 'Generic ESP32S3"),
    ({"board_json": "esp32s3"}, False, "flashed as board esp32s3"),
    ({"version": [1, 28, 0]}, False, "runs MicroPython 1.28.0; the image is compiled for "
                                     "1.29.0"),
    ({"mpy": 5}, False, "imports .mpy version 5"),
    ({"provisioned": True}, False, "is provisioned"),
    ({"sha256": False}, False, "no hashlib.sha256"),
])
def test_target_checks_refuse_with_a_clear_reason(esp32_image, kw, wipe, message):
    with pytest.raises(TargetError, match=message):
        check_target(info(**kw), esp32_image, wipe=wipe)


def test_wipe_allows_a_provisioned_or_reassigned_board(esp32_image):
    check_target(info(provisioned=True), esp32_image, wipe=True)
    check_target(info(board_json="esp32s3"), esp32_image, wipe=True)


# -- heap -------------------------------------------------------------------------------
def test_heap_verdict_needs_the_working_share_left():
    board = {"heap": "100K"}
    need = heap.working_need(board)
    assert need == 70 * 1024
    assert heap.assess(board, 20000, need)["fits"]
    low = heap.assess(board, 20000, need - 1)
    assert not low["fits"] and "leaves 69 KB, the firmware needs 70 KB" in low["problem"]
    oom = heap.assess(board, 60000, 30000, error="MemoryError importing runtime")
    assert not oom["fits"] and "importing it failed after 58 KB" in oom["problem"]
    broken = heap.assess(board, 100, 90000, error="ImportError importing hal: no machine")
    assert not broken["fits"] and "does not import on the device (ImportError importing " \
        "hal: no machine)" in broken["problem"] and "heap" not in broken["problem"][:40]


def test_host_footprint_is_measured_and_decides_only_for_64_bit_devices(esp32_image):
    resident = heap.host_footprint(esp32_image)
    total = sum(f.size for f in esp32_image.files if f.module)
    assert 0.3 * total < resident < 8 * total
    small = heap.predict(DeviceInfo({"heap_free": resident + 10, "maxsize": 2 ** 63 - 1}),
                         esp32_image)
    assert small["decisive"] and not small["fits"]
    mcu = heap.predict(DeviceInfo({"heap_free": resident + 10, "maxsize": 2 ** 31 - 1}),
                       esp32_image)
    assert not mcu["decisive"]
    roomy = heap.predict(DeviceInfo({"heap_free": resident + 100 * 1024,
                                     "maxsize": 2 ** 63 - 1}), esp32_image)
    assert roomy["fits"]


def test_imagefile_digest_is_of_the_installed_bytes():
    f = ImageFile("/lib/x.mpy", b"abc", wire=b"zz")
    assert f.digest == hashlib.sha256(b"abc").digest() and f.deflated and f.module == "x"
    assert ImageFile("/boot.py", b"").module is None


# -- retries ----------------------------------------------------------------------------
def test_files_that_fail_on_the_device_are_resent_then_given_up(monkeypatch):
    img = fake_image(["/lib/a.mpy", "/lib/b.mpy", "/main.py"])
    rounds = []

    def once(conn, files, use_deflate, progress, failing):
        rounds.append([f.path for f in files])
        return ({f.path: ("SHA-256 mismatch after writing" if f.path in failing else None)
                 for f in files}, sum(f.size for f in files), 0.1)

    monkeypatch.setattr(installer, "_send_once", lambda *a: once(*a, failing={"/lib/b.mpy"}))
    with pytest.raises(installer.DeviceError, match="failed their SHA-256 check on the device "
                                                    "3 times"):
        installer.send(None, img.files)
    assert rounds == [["/lib/a.mpy", "/lib/b.mpy", "/main.py"], ["/lib/b.mpy"],
                      ["/lib/b.mpy"]]
    rounds.clear()
    flaky = {"/lib/b.mpy"}

    def heal(*a):
        out = once(*a, failing=set(flaky))
        flaky.clear()
        return out

    monkeypatch.setattr(installer, "_send_once", heal)
    stats = installer.send(None, img.files)
    assert rounds == [["/lib/a.mpy", "/lib/b.mpy", "/main.py"], ["/lib/b.mpy"]]
    assert stats["resent"] == 1


def test_a_bundle_for_another_micropython_is_refused_at_the_device(esp32_image):
    from edgekit import catalog as C
    from edgekit.ota import manifest as man
    m = dict(esp32_image.bundle.manifest)
    m[C.K_RUNTIME] = "1.28.0"
    old = bundle_mod.Bundle(man.encode(m), esp32_image.bundle.payloads)
    img = image_mod.Image(old, esp32_image.board_def)
    with pytest.raises(TargetError, match="runs MicroPython 1.29.0; the image is compiled "
                                          "for 1.28.0"):
        check_target(info(), img)


def test_cli_refuses_a_bundle_of_another_kind_before_touching_a_board(tmp_path, capsys,
                                                                      esp32_image):
    from edgekit.cli import main
    path = esp32_image.bundle.save(tmp_path / "wm.ekota")
    code = main(["flash", "socket://127.0.0.1:9", "--board", "esp32", "--kind", "env_sensor",
                 "--bundle", str(path)])
    assert code == 2
    assert "is a water_meter bundle, not env_sensor" in capsys.readouterr().err


@pytest.mark.parametrize("board, baud", [("esp32", 57600), ("rp2040", None)])
def test_flash_sets_the_serial_port_for_the_boards_link(monkeypatch, board, baud):
    """The port is opened at the board's UART baud (here a definition at 57600), and at
    pyserial's usual 115200 for the Pico W's USB CDC link, which has no baud."""
    from edgekit.flash import flow
    opened = []

    def open_repl(port, baudrate):
        opened.append(baudrate)
        raise TargetError("stop here")
    monkeypatch.setattr(flow, "_open_repl", open_repl)
    board_def = boards.load_board(board)
    if baud:
        board_def["link"]["baud"] = baud
    img = types.SimpleNamespace(board=board, kind="water_meter", version="1.0.0",
                                board_def=board_def)
    with pytest.raises(TargetError):
        flow.flash("emu:x", img)
    assert opened == [baud or 115200]


def test_a_device_is_told_apart_by_the_most_specific_machine_name():
    """The stock SPIRAM build calls itself "Generic ESP32 module with SPIRAM with ESP32"
    (ports/esp32/boards/ESP32_GENERIC/mpconfigvariant_SPIRAM.cmake): a WROVER, which the plain
    ESP32's " with ESP32" matches too; a WROVER image is refused on the plain build."""
    from edgekit.flash.device import check_board, guess_board
    defs = {n: boards.load_board(n) for n in ("esp32", "esp32_wrover", "rp2040")}

    def device(machine):
        return types.SimpleNamespace(board=None, platform="esp32", machine=machine,
                                     emulated=None, board_json=None)
    assert guess_board(device("Generic ESP32 module with ESP32"), defs) == "esp32"
    wrover = device("Generic ESP32 module with SPIRAM with ESP32")
    assert guess_board(wrover, defs) == "esp32_wrover"
    check_board(wrover, defs["esp32_wrover"])
    with pytest.raises(TargetError, match="with SPIRAM with ESP32"):
        check_board(device("Generic ESP32 module with ESP32"), defs["esp32_wrover"])
