"""A throwaway emulator keeps its boards' flash in RAM where the host has a tmpfs: on ext4 a
crash-safe write (write-new + rename) flushed to disk and paced a simulated year by the
disk (edgekit.emu.scratch; bench/bench_emu.py prints both)."""
import os

import pytest

from edgekit.emu import Emulator, scratch


def test_a_throwaway_emulator_keeps_its_flash_in_ram_and_removes_it():
    ram = scratch.ram_dir()
    if ram is None:
        pytest.skip("this host has no writable RAM directory (/dev/shm)")
    emu = Emulator()
    try:
        state = emu.state_dir
        assert os.path.commonpath([str(state), ram]) == ram
        b = emu.start("esp32", time="paused", bare=True)
        assert os.path.commonpath([b.flash, ram]) == ram
    finally:
        emu.close()
    assert not state.exists()


def test_a_named_state_dir_stays_where_it_was_put(tmp_path):
    with Emulator(state_dir=tmp_path / "emu") as emu:
        assert emu.state_dir == tmp_path / "emu"
        b = emu.start("esp32", time="paused", bare=True)
        assert b.flash.startswith(str(tmp_path))
