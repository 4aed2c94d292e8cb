"""Wear budget of operator commands (issue 12.4): a command that only reads keeps its replay
counter in RAM until the next state-changing request, as the fetches do (SPEC 5). Counted
through the CLI with the device's own flash-operation counter (`diag`)."""
import json

import pytest

from edgekit.cli import main as edgekit

pytestmark = pytest.mark.hil(kind="water_meter")
PASS = "operator test passphrase"


def test_reading_commands_write_no_replay_counter(board, tmp_path, monkeypatch, capsys):
    if not board.emulated:
        # measured on the emulated serial tray: 3 flash operations between two diags
        pytest.skip("counts the flash operations of single commands: in real time the "
                    "firmware's own schedule writes meanwhile (needs paused time)")
    monkeypatch.setenv("EDGEKIT_HOME", str(tmp_path))
    monkeypatch.setenv("EDGEKIT_KEY_PASSPHRASE", PASS)
    # In paused time the board's clock stands while the host's runs: every command would
    # sync it (a time-floor save). What is counted here is the commands themselves.
    monkeypatch.setenv("EDGEKIT_MAX_DRIFT_S", "off")
    assert edgekit(["keys", "init"]) == 0
    assert edgekit(["provision", board.url, "--kind", "water_meter", "--site", "x"]) == 0
    capsys.readouterr()

    def flash_ops():
        assert edgekit(["command", board.url, "diag", "--json"]) == 0
        return json.loads(capsys.readouterr().out)["result"]["flash_ops"]

    def cost(*argv):
        before = flash_ops()
        assert edgekit(["command", board.url, *argv]) == 0
        capsys.readouterr()
        return flash_ops() - before

    assert cost("diag") == 0                # diag + diag: no flash at all
    one_save = cost("valve", "open=true")   # state-changing: its replay counter, saved first
    assert one_save > 0
    # read checkpoints the meter (a reported volume is never above what a reboot resumes):
    # that one save, and no replay counter on top of it
    assert cost("read") == one_save
    assert cost("history", "hours=2") == 0
