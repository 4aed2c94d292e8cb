"""The CLI's behaviour on mistakes, as a person or a script meets it: a mistyped command gets
the closest name, `--json` errors are one JSON object on stderr with a stable name, and a
reader that closes the pipe early (`| head`) gets no traceback."""
import json
import os
import subprocess
import sys

import pytest

from edgekit.cli import main
from edgekit.registry.db import Registry


@pytest.mark.parametrize("argv, hint", [
    (["provison"], "did you mean 'provision'?"),
    (["devices", "lsit"], "did you mean 'list'?"),
    (["keys", "rotat"], "did you mean 'rotate'?"),
])
def test_a_mistyped_command_suggests_the_closest(argv, hint, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert hint in capsys.readouterr().err


def test_nothing_close_suggests_nothing(capsys):
    with pytest.raises(SystemExit):
        main(["zzzzzz"])
    assert "did you mean" not in capsys.readouterr().err


def test_json_errors_are_one_object_on_stderr(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EDGEKIT_HOME", str(tmp_path))
    assert main(["devices", "show", "nope", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = json.loads(captured.err)
    assert err["error"] == "invalid_input" and err["exit_status"] == 2
    assert "nope" in err["message"]
    # without --json: the one readable line
    assert main(["devices", "show", "nope"]) == 2
    assert capsys.readouterr().err.startswith("edgekit: error: no device 'nope'")


def test_a_link_error_under_json_says_link_and_exits_3(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EDGEKIT_HOME", str(tmp_path))
    monkeypatch.setenv("EDGEKIT_KEY_PASSPHRASE", "correct horse battery")
    assert main(["keys", "init"]) == 0
    capsys.readouterr()
    assert main(["command", str(tmp_path / "no-such-port"), "diag", "--json"]) == 3
    err = json.loads(capsys.readouterr().err)
    assert err["error"] == "link" and err["exit_status"] == 3


def test_piping_into_head_prints_no_traceback(tmp_path):
    reg_path = tmp_path / "registry.sqlite"
    with Registry(reg_path) as reg:
        for i in range(2500):           # far more than a pipe's 64 KB buffer
            reg.upsert_device(f"bin-{i:05d}", kind="smart_bin", site="a long site name " * 3)
    env = dict(os.environ, EDGEKIT_HOME=str(tmp_path))
    proc = subprocess.run(f"'{sys.executable}' -m edgekit.cli devices list --json "
                          f"--registry '{reg_path}' | head -c 100",
                          shell=True, capture_output=True, text=True, env=env, timeout=120)
    assert len(proc.stdout) == 100
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, \
        proc.stderr
