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


def test_a_killed_emulators_ram_directory_is_swept_by_the_next(tmp_path):
    dead = subprocess_pid_that_exited()
    stale = tmp_path / "edgekit-emu-stale"
    stale.mkdir()
    (stale / "owner.pid").write_text(str(dead))
    mine = tmp_path / "edgekit-emu-mine"
    mine.mkdir()
    (mine / "owner.pid").write_text(str(os.getpid()))
    unmarked = tmp_path / "edgekit-emu-unmarked"
    unmarked.mkdir()
    scratch.sweep(str(tmp_path), "edgekit-emu-")
    assert not stale.exists() and mine.exists() and unmarked.exists()


def subprocess_pid_that_exited():
    import subprocess
    import sys
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid
