"""The emulator's bench rig (`edgekit emu rig`): protocol lines become supervisor requests,
bad lines are refused with ERR, its rig files load as bench rig files; tray boards are locked
one test at a time; a shuffle seed gives one order."""
import pytest

from edgekit.emu.rig_server import RigController, parse, rig_file
from edgekit.emu.supervisor import EmuError
from edgekit.hil.bench import BoardLock, claim
from edgekit.hil.rig import Rig, RigError


class FakeControl:
    def __init__(self):
        self.calls = []

    def request(self, op, **args):
        self.calls.append((op, args))
        if args.get("values", {}).get("nope"):
            raise EmuError("water_meter world has no quantity 'nope'")
        return {}


def test_lines_map_to_supervisor_requests():
    ctl = FakeControl()
    rig = RigController(["b-1", "b-2"], ctl)
    assert rig.handle("SET b-1.flow_lpm 12.5") == "OK"
    assert rig.handle("PULSE b-2.power 0.5") == "OK"
    assert rig.handle("PULSE b-1.reset 0.1") == "OK"
    assert ctl.calls == [("set", {"board_id": "b-1", "values": {"flow_lpm": "12.5"}}),
                         ("powercut", {"board_id": "b-2", "off": 0.5}),
                         ("reset", {"board_id": "b-1", "cause": "hard"})]


@pytest.mark.parametrize("line, says", [
    ("SET b-1.nope 1", "no quantity 'nope'"),
    ("SET b-9.flow_lpm 1", "no board 'b-9'"),
    ("SET flow_lpm 1", "<board id>.<name>"),
    ("PULSE b-1.power x", "must be a number"),
    ("PULSE b-1.power 1e9", "within 0..3600"),
    ("PULSE b-1.valve 1", "not a line"),
    ("SET b-1.power 1", "PULSE it"),
    ("RESET b-1", "expected `SET"),
])
def test_bad_lines_answer_err_and_change_nothing_else(line, says):
    ctl = FakeControl()
    answer = RigController(["b-1"], ctl).handle(line)
    assert answer.startswith("ERR ") and says in answer, answer
    assert "\n" not in answer
    assert all(op == "set" for op, _ in ctl.calls)      # only the refused set reached it


def test_parse_keeps_dots_in_board_ids():
    assert parse("SET tray.0.flow_lpm 3") == ("SET", "tray.0", "flow_lpm", "3")


def test_rig_file_loads_as_a_bench_rig(tmp_path):
    info = {"id": "tray0-water_meter", "board": "esp32", "kind": "water_meter"}
    world = {"values": {"flow_lpm": 0.0, "battery_drain_mv_per_day": 1.0, "tamper": False}}
    path = tmp_path / "r.toml"
    path.write_text(rig_file(info, world, "socket://127.0.0.1:4000"))
    rig = Rig.load(path)
    assert (rig.board, rig.kind, rig.port) == ("esp32", "water_meter", "socket://127.0.0.1:4000")
    assert rig.stimuli["maint_strap"]["channel"] == "tray0-water_meter.maint_strap"
    assert set(rig.stimuli) == {"flow_lpm", "battery_drain_mv_per_day", "tamper",
                                "maint_strap"}
    assert rig.lines == {"power": "tray0-water_meter.power", "reset": "tray0-water_meter.reset"}


def test_rig_file_with_an_unknown_kind_is_refused(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('[rig]\nkind = "toaster"\n')
    with pytest.raises(RigError, match="kind 'toaster' is not a device kind"):
        Rig.load(path)


def test_a_tray_board_is_held_by_one_test_at_a_time(tmp_path):
    ports = [str(tmp_path / f"tty{i}") for i in range(3)]
    held = [claim(ports, 0) for _ in range(3)]
    assert sorted(i for i, _ in held) == [0, 1, 2]      # three tests, three boards
    assert not BoardLock(ports[1]).acquire(wait=False)
    held[1][1].release()
    again = BoardLock(ports[held[1][0]])
    assert again.acquire(wait=False)
    again.release()
    for _, lock in held:
        lock.release()


def test_hil_shuffle_gives_one_order_per_seed():
    from edgekit.hil import plugin

    class Config:
        def __init__(self, seed):
            self.seed = seed

        def getoption(self, name):
            assert name == "--hil-shuffle"
            return self.seed

    def order(seed):
        items = list(range(50))
        plugin.pytest_collection_modifyitems(None, Config(seed), items)
        return items
    assert order(None) == list(range(50))               # no option: collection order
    assert order(7) == order(7) != order(8)
    assert sorted(order(7)) == list(range(50)) != order(7)
