"""`edgekit command` and `edgekit monitor` against an emulated meter provisioned by the CLI:
the same path an operator takes in the field."""
import json

import pytest

from edgekit import catalog as C
from operator_cli import fleet_home, run  # noqa: F401 - fleet_home is a fixture

pytestmark = pytest.mark.hil(kind="water_meter")


def test_command_and_monitor(board, world, clock, fleet_home, capsys):
    code, _, err = run(capsys, "provision", board.url, "--kind", "water_meter", "--site", "x")
    assert code == 0, err
    code, out, err = run(capsys, "command", board.url, "valve", "open=false", "--json")
    assert code == 0, err
    assert json.loads(out)["result"]["valve"] == "closed"
    assert world.snapshot()["outputs"]["valve"] is False
    code, out, _ = run(capsys, "command", board.url, "diag", "--json")
    assert json.loads(out)["result"]["boots"] >= 1
    # without --json: what a person reads (before: Python reprs, {'boots': 1, ...})
    code, out, _ = run(capsys, "command", board.url, "diag")
    assert code == 0 and "{'" not in out and "b'" not in out and "[[" not in out, out
    lines = dict(line.strip().split(": ", 1) for line in out.splitlines()[1:]
                 if ": " in line)
    assert lines["uptime_s"].split()[1] == "s" and lines["heap_free"].endswith(" B"), out
    code, out, _ = run(capsys, "command", board.url, "read")
    assert "flow_lpm: 0 L/min" in out and "volume_ml: 0 mL" in out, out     # valve closed
    code, _, err = run(capsys, "command", board.url, "valve", "open=maybe")
    assert code == 2 and "open: true or false" in err
    world.set(tamper=True)
    clock.advance(120)                      # the meter pushes a signed tamper EVENT
    code, out, err = run(capsys, "monitor", board.url, "--duration", "2", "--json")
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert code == 0, err
    assert any(e["type"] == C.EVENT and e["type_name"] == "EVENT"
               and e["payload"]["name"] == "tamper" and e["payload"]["active"] is True
               for e in events), out


def test_command_refuses_a_device_not_in_the_registry(board, fleet_home, capsys, tmp_path):
    code, _, err = run(capsys, "provision", board.url, "--kind", "water_meter", "--site", "x")
    assert code == 0, err
    code, _, err = run(capsys, "command", board.url, "read", "--registry",
                       str(tmp_path / "other.sqlite"))
    assert code == 2 and "not in this registry" in err
