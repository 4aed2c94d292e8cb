"""What a frozen image freezes, and the manifest that freezes it: the board's own manifest
(with _boot.py, the filesystem mount) comes first, the one-line HAL alias is there, build_info
names the kinds; a missing toolchain gets the one apt command; a changed source makes the
built VM stale."""
import json
import os

import pytest

from edgekit.frozen import manifest, sources, unixvm


def test_a_board_manifest_includes_the_boards_own_first_and_aliases_the_hal(tmp_path):
    path = manifest.write("esp32", "water_meter", "esp32", "1.2.3", tmp_path)
    lines = [x for x in path.read_text().splitlines() if not x.startswith("#")]
    assert lines[0] == 'include("$(PORT_DIR)/boards/manifest.py")'   # holds _boot.py
    assert lines[1] == f"freeze({str((tmp_path / 'frozen').resolve())!r})"
    staged = {p.name for p in (tmp_path / "frozen").iterdir()}
    assert {"hal.py", "hal_esp32.py", "hal_machine.py", "runtime.py", "catalog.py",
            "water_meter.py", "water_meter_schema.py", "build_info.py"} <= staged
    assert "water_atm.py" not in staged and "hal_emu.py" not in staged
    assert (tmp_path / "frozen" / "hal.py").read_text().startswith("from hal_esp32 import *")
    info = (tmp_path / "frozen" / "build_info.py").read_text()
    assert "KINDS = ['water_meter']" in info and "SEQ = 0" in info
    rp2 = manifest.write("rp2", "water_atm", "rp2040", "1.2.3", tmp_path / "rp2")
    assert rp2.read_text().splitlines()[1] == 'include("$(BOARD_DIR)/manifest.py")'
    assert (tmp_path / "rp2" / "frozen" / "hal.py").read_text().startswith(
        "from hal_rp2040 import *")


def test_the_unix_vm_freezes_every_kind_and_the_emulator_hal(tmp_path):
    manifest.write("unix", sources.ALL, "emu", "1.2.3", tmp_path)
    staged = {p.name for p in (tmp_path / "frozen").iterdir()}
    assert {f"{k}.py" for k in sources.KINDS} <= staged
    assert {"hal_emu.py", "emu_machine.py", "emu_vfs.py"} <= staged and "hal.py" not in staged
    assert repr(list(sources.KINDS)) in (tmp_path / "frozen" / "build_info.py").read_text()


def test_a_missing_toolchain_names_the_apt_command(monkeypatch, capsys):
    monkeypatch.setattr(unixvm.shutil, "which", lambda name: None)
    assert unixvm.main([]) == 2
    err = capsys.readouterr().err
    assert "apt-get install -y gcc-multilib" in err and "gcc-i686-linux-gnu" in err


def test_a_changed_firmware_source_makes_the_vm_stale(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_FROZEN_VM_DIR", str(tmp_path))
    (tmp_path / "micropython").write_bytes(b"\x7fELF")
    (tmp_path / "stamp.json").write_text(json.dumps({"digest": unixvm.wanted_digest()}))
    assert unixvm.status() == (True, "")
    src = sources.firmware_sources(sources.ALL)
    assert sources.digest(src) != sources.digest(src[:-1])


def test_an_unknown_kind_is_refused():
    with pytest.raises(Exception, match="kind"):
        sources.firmware_sources("toaster")


def test_build_image_prints_the_upstream_commands_for_the_board(tmp_path, monkeypatch, capsys):
    from edgekit.cli import main
    from edgekit.frozen import boardimage
    monkeypatch.setattr(boardimage.shutil, "which", lambda name: None)   # no ESP-IDF here
    assert main(["build-image", "--board", "esp32", "--kind", "water_meter", "--out",
                 str(tmp_path), "--src", "/opt/mp", "--json"]) == 0
    p = json.loads(capsys.readouterr().out)
    assert p["commands"][-1] == ("make -C /opt/mp/ports/esp32 BOARD=ESP32_GENERIC "
                                 f"FROZEN_MANIFEST={tmp_path.resolve() / 'manifest.py'}")
    assert p["built"] is None and not p["toolchain_present"]
    assert (tmp_path / "frozen" / "water_meter.py").exists()
    assert main(["build-image", "--board", "rp2040", "--kind", "water_atm", "--out",
                 str(tmp_path / "rp2"), "--src", "/opt/mp"]) == 0
    out = capsys.readouterr().out
    assert "BOARD=RPI_PICO_W" in out and "arm-none-eabi-gcc is not on PATH" in out
    # The WROVER is the stock SPIRAM variant of the same upstream board
    assert main(["build-image", "--board", "esp32_wrover", "--kind", "water_atm", "--out",
                 str(tmp_path / "wrover"), "--src", "/opt/mp", "--json"]) == 0
    p = json.loads(capsys.readouterr().out)
    assert "BOARD=ESP32_GENERIC BOARD_VARIANT=SPIRAM FROZEN_MANIFEST=" in p["commands"][-1]
    assert p["output"].endswith("build-ESP32_GENERIC-SPIRAM/firmware.bin")
    assert main(["build-image", "--board", "esp32", "--kind", "toaster"]) != 0


FAKE_MAKE = r'''#!/bin/sh
# The upstream build as far as this test needs it: the commands in order, and the image
# where the port's Makefile puts it.
echo "make $*" >> "$MAKE_LOG"
[ -n "$MAKE_FAILS" ] && case "$*" in *"$MAKE_FAILS"*) exit 2;; esac
dir= board=
while [ $# -gt 0 ]; do
  case "$1" in -C) dir="$2"; shift;; BOARD=*) board="${1#BOARD=}";; FROZEN_MANIFEST=*) frozen=1;; esac
  shift
done
if [ -n "$frozen" ]; then mkdir -p "$dir/build-$board" && echo image > "$dir/build-$board/firmware.bin"; fi
'''


def test_build_image_runs_the_upstream_build_where_the_toolchain_is(tmp_path, monkeypatch,
                                                                     capsys):
    from edgekit.cli import main
    tools = tmp_path / "bin"
    tools.mkdir()
    for name, text in (("idf.py", "#!/bin/sh\n"), ("make", FAKE_MAKE)):
        (tools / name).write_text(text)
        (tools / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")
    monkeypatch.setenv("MAKE_LOG", str(tmp_path / "make.log"))
    src = tmp_path / "mp"
    assert main(["build-image", "--board", "esp32", "--kind", "water_meter", "--out",
                 str(tmp_path / "out"), "--src", str(src), "--json"]) == 0
    p = json.loads(capsys.readouterr().out)
    assert p["toolchain_present"] and p["built"] == str(src / "ports/esp32/build-ESP32_GENERIC"
                                                             "/firmware.bin")
    ran = (tmp_path / "make.log").read_text().splitlines()
    assert ran == p["commands"]                     # what it printed, in order
    # A failing step stops the build and says which.
    monkeypatch.setenv("MAKE_FAILS", "submodules")
    assert main(["build-image", "--board", "esp32", "--kind", "water_meter", "--out",
                 str(tmp_path / "out2"), "--src", str(tmp_path / "mp2")]) != 0
    assert "submodules` failed (exit 2)" in capsys.readouterr().err
