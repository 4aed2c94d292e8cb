"""What the CLI-driven HIL tests share: the `fleet_home` fixture (imported by each test module:
a hil_tests/conftest.py would shadow tests/emu/conftest.py, which tests import by name), the
test fleet's passphrase and a runner that returns (exit code, stdout, stderr) of one
`edgekit` command run in-process."""
import pytest

from edgekit.cli import main as edgekit

PASS = "operator test passphrase"


def run(capsys, *argv):
    code = edgekit(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


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
