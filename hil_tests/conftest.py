"""Fixtures shared by the CLI-driven HIL tests (the board fixtures come from the edgekit
pytest plugin, edgekit.hil.plugin)."""
import pytest

from edgekit.cli import main as edgekit
from operator_cli import PASS


@pytest.fixture
def fleet_home(tmp_path, monkeypatch, capsys):
    """A fresh EDGEKIT_HOME with fleet keys; no test hooks or clock settings inherited."""
    monkeypatch.setenv("EDGEKIT_HOME", str(tmp_path))
    monkeypatch.setenv("EDGEKIT_KEY_PASSPHRASE", PASS)
    for name in ("EDGEKIT_MAX_DRIFT_S", "EDGEKIT_TEST_CRASH_AT"):
        monkeypatch.delenv(name, raising=False)
    assert edgekit(["keys", "init"]) == 0
    capsys.readouterr()
    return tmp_path
