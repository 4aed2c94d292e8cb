"""Many boards in one supervisor: 20 here (200 in bench/bench_emu.py)."""
import os
import time

from conftest import raw_exec, read_until


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_fleet_of_20_starts_answers_and_stops(emu):
    boards = emu.fleet(20, board="esp32", kind="water_meter")
    try:
        ids = {b.id for b in boards}
        assert len(ids) == 20 and len({b.url for b in boards}) == 20
        deadline = time.monotonic() + 60
        while True:
            infos = emu.boards()
            up = [i for i in infos if i["id"] in ids and i["state"] in ("asleep", "running")]
            if len(up) == 20:
                break
            assert time.monotonic() < deadline, [(i["id"], i["state"]) for i in infos]
            time.sleep(0.1)
        assert all(i["speed"] == 60.0 and i["time"] == "virtual" for i in up)
        pids = [i["pid"] for i in up]
        assert len(set(pids)) == 20 and all(_alive(p) for p in pids)
        # the first and the last answer on their own links
        for b in (boards[0], boards[-1]):
            port = b.serial(timeout=0.1)
            out = raw_exec(port, "import hal\nprint(hal.NAME, hal.reset_cause())")
            assert out.strip() == "esp32 power_on"     # no soft reset on this path
            port.close()
        # simulated time runs for all of them at the fleet's capped speed
        t0 = [b.now() for b in boards[:3]]
        time.sleep(0.5)
        assert all(b.now() > t for b, t in zip(boards[:3], t0))
    finally:
        for b in boards:
            b.stop()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids):
        assert time.monotonic() < deadline, "board VMs outlived stop()"
        time.sleep(0.05)
    assert not [i for i in emu.boards() if i["id"] in ids]
