"""Store and forward end to end, through the port and the `edgekit` command as a gateway
operator runs them: `monitor --ack` stores every record before the device may delete it,
a host cut at any point between store, ack and the device's trim loses nothing and stores
nothing twice, and an unplugged cable is ridden out.

The reference for "what the device produced" is what a plain watcher (`monitor` without
--ack) read from the device into a copy of the registry before anything was acknowledged."""
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from edgekit.cli import main as edgekit
from operator_cli import fleet_home  # noqa: F401 - a fixture

CRASH_ENV, CRASH_STATUS = "EDGEKIT_TEST_CRASH_AT", 70   # edgekit.operate.forward's test hook

pytestmark = pytest.mark.hil(kind="water_meter")
HOUR = 3600
METER_RECORDS = {"volume", "consumption", "flow_min", "flow_max"}   # each hourly pack


def cli(*argv, crash=None, **kw):
    """`edgekit ...` in its own process, as a gateway runs it (the crash hook exits it)."""
    env = dict(os.environ)
    if crash:
        env[CRASH_ENV] = crash
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *map(str, argv)], env=env,
                          capture_output=True, text=True, timeout=300, **kw)


def stored(path):
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT journal_seq, idx, name, value, value_text, unit "
                           "FROM telemetry ORDER BY journal_seq, idx").fetchall()
    finally:
        con.close()


def snapshot(src, dst):
    """A consistent copy of a WAL database (file copy could miss the WAL's pages)."""
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    a.backup(b)
    a.close()
    b.close()


def journal(board, capsys):
    """The device's telemetry journal as its `diag` command reports it."""
    code = edgekit(["command", board.url, "diag", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    out = out.out
    return json.loads(out)["result"]["telemetry"]


def provisioned_meter(board, world, clock, capsys, hours):
    assert edgekit(["provision", board.url, "--kind", "water_meter", "--site", "x"]) == 0
    capsys.readouterr()
    world.set(flow_lpm=3.0)
    clock.advance(hours * HOUR)          # one hourly pack each, journaled on the device


def check_complete(rows, last):
    packs = {}
    for seq, idx, name, *_ in rows:
        packs.setdefault(seq, []).append((idx, name))
    assert sorted(packs) == list(range(1, last + 1)), rows
    for seq, recs in packs.items():
        assert [i for i, _ in recs] == list(range(len(recs))), (seq, recs)
        assert METER_RECORDS <= {n for _, n in recs}, (seq, recs)


@pytest.mark.parametrize("point", ["telemetry-stored", "telemetry-ack-sent",
                                   "telemetry-acked"])
@pytest.mark.hil(sim_s=25200)  # a wait it needs: skips early on a bench
def test_a_host_cut_between_store_ack_and_trim_loses_and_doubles_nothing(
        board, world, clock, fleet_home, capsys, point):
    provisioned_meter(board, world, clock, capsys, hours=7)
    before = journal(board, capsys)
    assert before["pending"] == before["last"] >= 7
    registry, reference = fleet_home / "registry.sqlite", fleet_home / "reference.sqlite"
    snapshot(registry, reference)
    watch = cli("monitor", board.url, "--registry", reference, "--duration", 1, "--json")
    assert watch.returncode == 0, watch.stderr
    expected = stored(reference)
    check_complete(expected, before["last"])
    assert journal(board, capsys)["pending"] == before["pending"]     # watching acks nothing

    cut = cli("monitor", board.url, "--ack", "--duration", 30, crash=point)
    assert cut.returncode == CRASH_STATUS, cut.stderr
    after_cut = stored(registry)
    left = journal(board, capsys)["pending"]
    if point == "telemetry-stored":
        assert after_cut and set(after_cut) < set(expected)  # the first page, not all
        assert left == before["pending"]                     # stored, never acknowledged
    else:
        # Pages are acknowledged together once stored (forward.ACK_EVERY pages): the cut at
        # the first acknowledgement finds every page of this backlog stored.
        assert set(after_cut) == set(expected)
        if point == "telemetry-acked":
            assert left == 0                                 # the device trimmed them

    again = cli("monitor", board.url, "--ack", "--duration", 1)
    assert again.returncode == 0, again.stderr
    assert stored(registry) == expected                      # every record, each once
    assert journal(board, capsys)["pending"] == 0
    # Printed: one line per record the second run had to fetch again (the device re-sent
    # what it still held), each once.
    printed = [line.split()[2] for line in again.stdout.splitlines() if " = " in line]
    assert len(printed) == len(set(printed))


class Lines:
    """A process's output lines, read as they come."""

    def __init__(self, stream):
        self.lines, self._q = [], queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream):
        for line in stream:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def all(self):
        """Every line, once the process has ended."""
        while True:
            line = self._q.get(timeout=60)
            if line is None:
                return self.lines
            self.lines.append(line)

    def wait_for(self, predicate, what, limit=120.0):
        """Until a line satisfies predicate (the limit only keeps a broken run finite)."""
        deadline = time.monotonic() + limit
        while not any(predicate(line) for line in self.lines):
            try:
                line = self._q.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"monitor never printed {what}; got: {self.lines[-20:]}")
            if line is None:
                pytest.fail(f"monitor ended before printing {what}; got: {self.lines[-20:]}")
            self.lines.append(line)


def _ctrl_c_default():
    # The monitor is stopped with Ctrl-C (SIGINT), as a technician stops it. A suite run in
    # the background of a non-interactive shell (`nohup make test &`) hands its children
    # SIGINT ignored, and a Python started so never raises KeyboardInterrupt: the monitor
    # ran on and the test waited 60 s for it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("via", ["socket", "tty"])
@pytest.mark.hil(bench="unplugging the cable needs the emulator (a bench has no cable robot)")
def test_monitor_reconnects_after_an_unplugged_cable_without_loss_or_duplicates(
        board, world, clock, fleet_home, capsys, via):
    faults = board.faults                # the emulator's: a bench has no cable robot
    port = board.url if via == "socket" else faults.pty_link   # the serial port's path
    provisioned_meter(board, world, clock, capsys, hours=2)
    proc = subprocess.Popen([sys.executable, "-m", "edgekit.cli", "monitor", port, "--ack"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_ctrl_c_default)
    try:
        out, err = Lines(proc.stdout), Lines(proc.stderr)
        out.wait_for(lambda s: "#2.3 " in s, "the backlog (pack 2)")
        faults.unplug()                  # the cable out: the monitor's link drops
        err.wait_for(lambda s: "link lost" in s and "reconnecting" in s, "'link lost'")
        clock.advance(2 * HOUR)          # packs 3 and 4 are journaled; their pushes are lost
        faults.replug()
        err.wait_for(lambda s: "link back" in s, "'link back'")
        out.wait_for(lambda s: "#4.3 " in s, "packs journaled while unplugged")
        world.set(tamper=True)
        clock.advance(120)               # an alarm, pushed on the live link at once
        out.wait_for(lambda s: "EVENT tamper SET" in s, "the alarm pushed after the reconnect")
        clock.advance(20 * HOUR - 120)   # hour 24: the daily report pushes the day's packs
        out.wait_for(lambda s: "#24.3 " in s, "the daily report pushed after the reconnect")
        err.wait_for(lambda s: "telemetry up to #24; 0 left" in s, "the last acknowledgement")
    finally:
        proc.send_signal(2)              # Ctrl-C
        proc.wait(timeout=60)
    assert proc.returncode == 0, err.all()
    printed = [line.split()[2] for line in out.all() if " = " in line]
    rows = stored(fleet_home / "registry.sqlite")
    last = journal(board, capsys)
    assert last["pending"] == 0 and last["last"] >= 24
    check_complete(rows, last["last"])
    assert sorted(printed) == sorted(f"#{seq}.{idx}" for seq, idx, *_ in rows)


@pytest.mark.hil(sim_s=120)  # a wait it needs: skips early on a bench
def test_an_alarm_cut_between_store_and_ack_is_stored_and_logged_once(
        board, world, clock, fleet_home, capsys):
    provisioned_meter(board, world, clock, capsys, hours=0)
    world.set(tamper=True)
    clock.advance(120)                   # journaled and pushed while nobody listens
    cut = cli("monitor", board.url, "--ack", "--duration", 30, crash="events-stored")
    assert cut.returncode == CRASH_STATUS, cut.stderr
    again = cli("monitor", board.url, "--ack", "--duration", 1)
    assert again.returncode == 0, again.stderr
    assert "EVENT tamper SET" in again.stdout       # sent again: the first run never acked
    con = sqlite3.connect(fleet_home / "registry.sqlite")
    try:
        events = con.execute("SELECT journal_seq, name, active FROM device_events").fetchall()
        alarms = con.execute("SELECT detail FROM events WHERE type = 'alarm'").fetchall()
    finally:
        con.close()
    assert [(name, active) for _, name, active in events].count(("tamper", 1)) == 1
    assert len({seq for seq, *_ in events}) == len(events) == len(alarms)
    code = edgekit(["monitor", board.url, "--duration", "1", "--json"])   # nothing left
    lines = [json.loads(s) for s in capsys.readouterr().out.splitlines() if s.strip()]
    assert code == 0 and not [e for e in lines if e["type_name"] == "EVENT"], lines


@pytest.mark.hil(sim_s=25200)  # a wait it needs: skips early on a bench
def test_drain_stops_once_everything_journaled_is_stored(board, world, clock, fleet_home,
                                                         capsys):
    # A scheduled gateway (or a technician's collect-and-go): without --drain the monitor
    # listens until --duration ends or Ctrl-C, whatever is left to fetch.
    provisioned_meter(board, world, clock, capsys, hours=7)
    before = journal(board, capsys)
    assert before["pending"] >= 7
    registry = fleet_home / "registry.sqlite"
    look = cli("monitor", board.url, "--drain", "--json")
    assert look.returncode == 0, look.stderr
    check_complete(stored(registry), before["last"])
    assert journal(board, capsys)["pending"] == before["pending"]    # not --ack: kept

    gateway = cli("monitor", board.url, "--ack", "--drain")
    assert gateway.returncode == 0, gateway.stderr
    assert journal(board, capsys)["pending"] == 0
    check_complete(stored(registry), before["last"])                  # each record once
    assert f"telemetry up to #{before['last']}; 0 left" in gateway.stderr

