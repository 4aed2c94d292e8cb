"""`edgekit ota push` warns before pushing to an emulated board in virtual time: its trial
deadline is device time, and a board in virtual time skips its idle time between the host's
frames (the demo's update rolled back so on a loaded machine)."""
from edgekit.emu.port_names import deadline_warning


def test_virtual_time_board_gets_the_warning_with_the_command_that_fixes_it():
    text = deadline_warning("emu:esp32-3", {"id": "esp32-3", "time": "virtual"})
    assert "virtual time" in text and "edgekit emu clock esp32-3 --mode real" in text


def test_real_and_paused_boards_and_real_ports_get_none():
    assert deadline_warning("emu:esp32-3", {"id": "esp32-3", "time": "real"}) is None
    assert deadline_warning("emu:esp32-3", {"id": "esp32-3", "time": "paused"}) is None
    assert deadline_warning("/dev/ttyUSB0") is None
    assert deadline_warning("socket://127.0.0.1:4000") is None


def test_an_unknown_board_is_left_to_the_port_to_report(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_HOME", str(tmp_path))      # no emulator running here
    assert deadline_warning("emu:nope") is None
