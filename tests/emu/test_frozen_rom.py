"""The frozen32 ROM: the board-accurate 32-bit VM with the firmware frozen runs a board with
the board's heap exactly (no allowance), finds its firmware through the import system only,
and is refused, with what to do, when unknown or stale."""
import json

import pytest

from edgekit.emu import frozen_rom
from edgekit.board_defs import load_board, parse_size
from edgekit.emu.supervisor import EmuError
from edgekit.frozen import unixvm
from edgekit.testing import frozenvm

from conftest import mpremote

PROBE = ("import gc, sys, json, runtime, water_meter; gc.collect(); "
         "print(json.dumps([gc.mem_free() + gc.mem_alloc(), runtime.__file__, sys.path, "
         "runtime._import_if_present('water_meter') is water_meter, "
         "runtime._import_if_present('no_such_app')]))")


def test_a_frozen_board_gets_the_board_heap_exactly_and_runs_frozen_firmware(emu):
    frozenvm.require()
    b = emu.start("esp32", time="real", bare=True, rom="frozen32")
    try:
        board_heap = parse_size(load_board("esp32")["heap"])
        assert b.info()["rom"] == "frozen32"
        assert parse_size(b.info()["heap"]) == board_heap
        total, where, path, found, absent = json.loads(
            mpremote(b.url, "resume", "exec", PROBE).strip().splitlines()[-1])
        # The GC's own tables take a few percent of -X heapsize; nothing is added to it.
        assert 0.9 * board_heap < total <= board_heap
        assert where == "runtime.py"            # frozen: no filesystem path
        assert path[:2] == ["", ".frozen"]      # the esp32/rp2 ports' order
        assert found is True and absent is None
    finally:
        b.stop()


def test_the_default_rom_adds_the_allowance_the_frozen_one_does_not(emu):
    b = emu.start("esp32", kind="water_meter", time="paused")
    try:
        assert b.info()["rom"] == "mpy"
        assert int(b.info()["heap"]) > parse_size(load_board("esp32")["heap"])
    finally:
        b.stop()


def test_an_unknown_or_stale_rom_is_refused_with_what_to_do(emu, tmp_path, monkeypatch):
    with pytest.raises(EmuError, match="use one of mpy, frozen32"):
        emu.start("esp32", rom="frozen64")
    monkeypatch.setenv("EDGEKIT_FROZEN_VM_DIR", str(tmp_path))
    with pytest.raises(frozen_rom.RomError, match="not built .make frozen-vm"):
        frozen_rom.check("frozen32")
    (tmp_path / "micropython").write_bytes(b"")
    (tmp_path / "stamp.json").write_text(json.dumps({"digest": "0" * 16}))
    with pytest.raises(frozen_rom.RomError, match="other firmware sources"):
        frozen_rom.check("frozen32")
    (tmp_path / "stamp.json").write_text(json.dumps({"digest": unixvm.wanted_digest()}))
    frozen_rom.check("frozen32")
