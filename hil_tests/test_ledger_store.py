"""A water ATM's ledger reaches the registry before the kiosk may forget it: `edgekit ledger
fetch` stores every record, then acknowledges; a host cut between the two loses nothing and
stores nothing twice; `edgekit ledger show` replays the stored books to the kiosk's own
balances. Found by a 90-day nightly soak: nothing drained the ledger, and after 800 unacked
records the kiosk (rightly) stopped selling."""
import json
import os
import sqlite3
import subprocess
import sys

import pytest

from edgekit.cli import main as edgekit
from operator_cli import fleet_home  # noqa: F401 - a fixture

CRASH_ENV, CRASH_STATUS = "EDGEKIT_TEST_CRASH_AT", 70   # edgekit.operate.forward's test hook
pytestmark = pytest.mark.hil(kind="water_atm")
CARDS = (0x0A000001, 0x0A000002)
CONFIG = {"preset_l": 2, "grant_ml": 500, "settle_ms": 1500}


def run(capsys, *argv):
    code = edgekit([str(a) for a in argv])
    out = capsys.readouterr()
    assert code == 0, (argv, out.err)
    return out.out


def cli(*argv, crash=None):
    """`edgekit ...` in its own process (the crash hook exits it)."""
    env = dict(os.environ)
    if crash:
        env[CRASH_ENV] = crash
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *map(str, argv)], env=env,
                          capture_output=True, text=True, timeout=300)


def command(board, capsys, *argv):
    return json.loads(run(capsys, "command", board.url, *argv, "--json"))["result"]


def kiosk(board, capsys, tmp_path):
    (tmp_path / "atm.json").write_text(json.dumps(CONFIG))
    run(capsys, "provision", board.url, "--kind", "water_atm", "--site", "x", "--config",
        tmp_path / "atm.json")
    command(board, capsys, "prices", "bands=[[0,5000]]")
    for uid in CARDS:
        command(board, capsys, "card", f"uid={uid:08x}", "role=water")
        command(board, capsys, "credit", f"uid={uid:08x}", "amount=100000")


def sell(world, clock, count):
    for i in range(count):
        world.set(card=CARDS[i % len(CARDS)])      # a 2 L preset: 10 s at 12 L/min
        clock.advance(20)
        world.set(card=0)
        clock.advance(20)


def stored(registry):
    con = sqlite3.connect(registry)
    try:
        return [r[0] for r in con.execute("SELECT seq FROM ledger ORDER BY seq")]
    finally:
        con.close()


@pytest.mark.hil(sim_s=240)  # a wait it needs: skips early on a bench
def test_fetch_stores_then_acknowledges_and_show_replays_the_kiosks_books(
        board, world, clock, fleet_home, capsys, tmp_path):
    kiosk(board, capsys, tmp_path)
    sell(world, clock, 3)
    books = command(board, capsys, "reconcile")
    last = books["last"]
    assert books["unacked"] == last > 3
    got = json.loads(run(capsys, "ledger", "fetch", board.url, "--json"))
    assert (got["stored"], got["first"], got["last"], got["acked"]) == (last, 1, last, last)
    assert command(board, capsys, "reconcile")["unacked"] == 0
    assert stored(fleet_home / "registry.sqlite") == list(range(1, last + 1))
    again = json.loads(run(capsys, "ledger", "fetch", board.url, "--json"))
    assert again["fetched"] == 0 and again["acked"] is None

    sell(world, clock, 2)
    more = json.loads(run(capsys, "ledger", "fetch", board.url, "--json"))
    assert more["first"] == last + 1 and more["stored"] == more["fetched"] > 0
    shown = json.loads(run(capsys, "ledger", "show", more["device"],
                           "--json"))
    assert shown["dispenses"] == 5 and shown["records"] == more["last"]
    for uid in CARDS:
        kiosk_says = command(board, capsys, "balance", f"uid={uid:08x}")["balance"]
        assert shown["cards"][f"{uid:08x}"]["balance"] == kiosk_says
    assert shown["charged"] == 2 * 100000 - sum(c["balance"] for c in shown["cards"].values())
    text = run(capsys, "ledger", "show", more["device"])
    assert "dispenses 5" in text


@pytest.mark.parametrize("point", ["ledger-stored", "ledger-acked"])
@pytest.mark.hil(sim_s=120)  # a wait it needs: skips early on a bench
def test_a_host_cut_during_a_fetch_loses_and_doubles_nothing(board, world, clock, fleet_home,
                                                             capsys, tmp_path, point):
    kiosk(board, capsys, tmp_path)
    sell(world, clock, 2)
    last = command(board, capsys, "reconcile")["last"]
    cut = cli("ledger", "fetch", board.url, crash=point)
    assert cut.returncode == CRASH_STATUS, cut.stderr
    registry = fleet_home / "registry.sqlite"
    assert stored(registry) == list(range(1, last + 1))     # stored before anything else
    unacked = command(board, capsys, "reconcile")["unacked"]
    assert unacked == (last if point == "ledger-stored" else 0)
    rerun = cli("ledger", "fetch", board.url, "--json")
    assert rerun.returncode == 0, rerun.stderr
    again = json.loads(rerun.stdout)
    assert again["stored"] == 0 and again["already_stored"] == unacked
    assert command(board, capsys, "reconcile")["unacked"] == 0
    assert stored(registry) == list(range(1, last + 1))     # once each


def test_show_names_a_device_the_registry_does_not_hold(fleet_home, capsys):
    code = edgekit(["ledger", "show", "nobody-here"])
    err = capsys.readouterr().err
    assert code != 0 and "no device 'nobody-here'" in err
