"""pytest plugin (entry point `pytest11`): one HIL suite against emulated or real boards.

    --board emu:esp32[:KIND]     an emulated board (default when no --board is given)
    --board serial:/dev/ttyUSB0  a real board on a serial port
    --board socket://HOST:PORT   anything pyserial reaches by URL
Several --board options give multi-device tests their boards, in order (`boards` fixture).
Several serial boards make a tray: each test takes a free one whose rig stages its kind
(`--rig` once for all, or once per serial board in order), pytest workers share the tray
through a lock per board, and every test starts from a factory-fresh board (hil/bench.py).
`--hil-shuffle SEED` runs the tests in a random order (the same on every worker).

Fixtures: `board` (a Target: transport(), url, world, clock, powercut(), reset(), faults),
`boards`, `world`, `clock`, `hil_fleet` (a throwaway test fleet), `provisioned` (a factory:
provisioned(kind) -> Device with an operator-signed session). Tests marked
`@pytest.mark.hil(kind="water_meter")` get a board of that kind on the emulator;
`hil(boards=3, kinds=[...])` one of each named kind (a mixed fleet, on the emulator only).
Scenario files `hil_tests/scenarios/*.toml` run through hil_tests/test_scenarios.py with
the same fixtures, so they run unchanged on the emulator and on a bench.
"""
import os
import random
import re

import pytest

from edgekit.hil.rig import Rig, RigError
from edgekit.hil.targets import BoardSpec, EmulatedTarget, RealTarget

DEFAULT_BOARD = "emu:esp32"


def pytest_addoption(parser):
    group = parser.getgroup("edgekit", "edgekit hardware-in-the-loop")
    group.addoption("--board", action="append", default=[], metavar="SPEC",
                    help="board under test: emu:BOARD[:KIND], serial:PORT or socket://HOST:PORT "
                         "(repeat for multi-device tests; default emu:esp32)")
    group.addoption("--rig", action="append", default=[], metavar="FILE",
                    help="bench rig description (TOML) mapping world stimuli to rig channels; "
                         "once for every serial board, or once per serial board in order")
    group.addoption("--hil-shuffle", type=int, default=None, metavar="SEED",
                    help="run the tests in a random order drawn from SEED (order-independence)")
    group.addoption("--max-real-wait", type=float, default=120.0, metavar="SECONDS",
                    help="on a real board, skip tests that need more real time than this")


def pytest_configure(config):
    config.addinivalue_line("markers", "hil(kind=None, time='paused', boards=1, bench=None, "
                            "sim_s=0, kinds=None): a hardware-in-the-loop test; kind picks the "
                            "app and the emulator's world model (kinds: one per board, for a "
                            "mixed fleet on the emulator); bench='reason' skips it on a bench, "
                            "sim_s (simulated seconds it needs) skips it there past "
                            "--max-real-wait")
    config._edgekit_specs = [BoardSpec(s) for s in (config.getoption("--board")
                                                    or [DEFAULT_BOARD])]
    # A damaged rig file is a usage error, said once before any test runs (not a traceback
    # from inside a fixture, once per test).
    paths = config.getoption("--rig")
    real = [s for s in config._edgekit_specs if not s.emulated]
    if paths and len(paths) not in (1, len(real)):
        raise pytest.UsageError(f"{len(paths)} --rig files for {len(real)} serial boards: give "
                                "one rig for all of them, or one per --board in order")
    try:
        rigs = [Rig.load(p) for p in paths]
    except RigError as exc:
        raise pytest.UsageError(str(exc)) from None
    config._edgekit_rig = rigs[0] if rigs else None
    config._edgekit_rigs = [rigs[0] if len(rigs) == 1 else rigs[i] if rigs else None
                            for i in range(len(real))]
    config._edgekit_tray = real


def pytest_collection_modifyitems(session, config, items):
    seed = config.getoption("--hil-shuffle")
    if seed is not None:
        # The same seed on every xdist worker gives every worker the same order, which
        # xdist requires; a different seed is a different order.
        random.Random(seed).shuffle(items)


def board_specs(config):
    return config._edgekit_specs


@pytest.fixture(scope="session")
def edgekit_emulator(pytestconfig):
    if not any(s.emulated for s in board_specs(pytestconfig)):
        pytest.skip("starts emulated boards of its own: needs --board emu:... (this run has "
                    "only boards reached through their ports)")
    from edgekit.emu import Emulator
    emu = Emulator()
    yield emu
    emu.close()


@pytest.fixture(scope="session")
def edgekit_rig(pytestconfig):
    return pytestconfig._edgekit_rig


def _marker(request):
    """The test's hil() options: every hil marker merged, the closest (the test's own, then
    its class, then its module) winning, so `@pytest.mark.hil(bench=...)` on a test keeps
    the module's kind."""
    out = {}
    for m in reversed(list(request.node.iter_markers("hil"))):
        out.update(m.kwargs)
    return out


def _bench_skip(opts, max_wait):
    """Skip before a bench board is claimed and reset (seconds of real time each) when the
    test says it needs what a bench cannot give: `bench="reason"`, or `sim_s=N` seconds of
    simulated time beyond --max-real-wait."""
    if opts.get("bench"):
        pytest.skip(opts["bench"])
    if opts.get("sim_s", 0) > max_wait:
        pytest.skip(f"needs {opts['sim_s']:.0f} s of real time on a bench (limit "
                    f"--max-real-wait={max_wait:.0f}); run it on the emulator")


_turn = [0]         # where this process starts looking for a free tray board next


def _tray_boards(request, pytestconfig, opts, wanted):
    """[(RealTarget, BoardLock)] for this test: free tray boards whose rig stages its kind."""
    from edgekit.hil.bench import BoardLock, claim
    tray, rigs = pytestconfig._edgekit_tray, pytestconfig._edgekit_rigs
    kind = opts.get("kind")
    fits = [i for i, rig in enumerate(rigs)
            if kind is None or rig is None or rig.kind in (None, kind)]
    if not fits:
        pytest.skip(f"no board in the tray has a rig for {kind} (give a --rig whose [rig] kind "
                    f"= \"{kind}\")")
    if len(fits) < wanted:
        pytest.skip(f"needs {wanted} boards; give --board {wanted} times")
    if opts.get("kinds"):
        pytest.skip("needs boards of several kinds (hil kinds=): the emulator's, a tray stages "
                    "one kind per test")
    if opts.get("options", {}).get("bare"):
        pytest.skip("needs a bare board (MicroPython and an empty filesystem); a bench board "
                    "keeps its image between tests")
    ports = [tray[i].port for i in fits]
    if wanted == 1:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:]
        _turn[0] += 1
        i, lock = claim(ports, _turn[0] + (int(worker) if worker.isdigit() else 0))
        chosen = [(fits[i], lock)]
    else:                   # several: always in tray order, so two tests never deadlock
        chosen = []
        for i in fits[:wanted]:
            lock = BoardLock(tray[i].port)
            lock.acquire()
            chosen.append((i, lock))
    return [(RealTarget(tray[i], rigs[i], pytestconfig.getoption("--max-real-wait")), lock)
            for i, lock in chosen]


@pytest.fixture
def boards(request, pytestconfig, edgekit_rig):
    opts = _marker(request)
    specs = board_specs(pytestconfig)
    wanted = opts.get("boards", 1)
    targets, locks = [], []
    try:
        if not specs[0].emulated:
            _bench_skip(opts, pytestconfig.getoption("--max-real-wait"))
            for target, lock in _tray_boards(request, pytestconfig, opts, wanted):
                targets.append(target)
                locks.append(lock)
            from edgekit.hil.bench import factory_state
            for target in targets:
                kind = opts.get("kind") or target.kind
                if kind:
                    factory_state(target, kind)
            yield targets
            return
        if len(specs) < wanted:
            specs = specs + [specs[0]] * (wanted - len(specs))
        emulator = request.getfixturevalue("edgekit_emulator")
        kinds = opts.get("kinds") or [None] * max(wanted, 1)
        if len(kinds) != max(wanted, 1):
            raise pytest.UsageError(f"hil(kinds=...) names {len(kinds)} kinds for {wanted} "
                                    "boards: give one kind per board")
        for spec, own_kind in zip(specs[:max(wanted, 1)], kinds):
            kind = own_kind or opts.get("kind") or spec.kind
            spec = BoardSpec(f"emu:{spec.board}:{kind}" if kind else f"emu:{spec.board}")
            targets.append(EmulatedTarget(emulator, spec,
                                          time_mode=opts.get("time", "paused"),
                                          **opts.get("options", {})))
        yield targets
    finally:
        for t in targets:
            t.close()
        for lock in locks:
            lock.release()


@pytest.fixture
def board(boards):
    return boards[0]


@pytest.fixture
def world(board):
    return board.world


@pytest.fixture
def clock(board):
    return board.clock


@pytest.fixture(scope="session")
def hil_fleet(tmp_path_factory):
    from edgekit.hil.devices import HilFleet
    return HilFleet(tmp_path_factory.mktemp("hil-fleet"))


@pytest.fixture
def provisioned(board, hil_fleet, request):
    """provisioned(kind=None, config=None, target=None) -> Device (closed after the test)."""
    from edgekit.hil.devices import provision
    made = []

    def make(kind=None, config=None, target=None):
        target = target or board
        kind = kind or _marker(request).get("kind") or target.kind
        if not kind:
            raise pytest.UsageError("provisioned(): name a kind (or mark the test hil(kind=))")
        device = provision(target, hil_fleet, kind, config=config)
        made.append(device)
        return device

    yield make
    for d in made:
        d.close()


def pytest_terminal_summary(terminalreporter, config):
    specs = getattr(config, "_edgekit_specs", None)
    stats = terminalreporter.stats

    def hil(key):
        return [r for r in stats.get(key, []) if "hil_tests" in getattr(r, "nodeid", "")]
    count = {k: len(hil(k)) for k in ("passed", "failed", "error", "skipped", "xfailed",
                                      "xpassed")}
    if not specs or not sum(count.values()):
        return
    ran = sum(count[k] for k in ("passed", "failed", "error", "xfailed", "xpassed"))
    terminalreporter.section("edgekit HIL summary")
    terminalreporter.line("boards: " + ", ".join(s.text for s in specs))
    seed = config.getoption("--hil-shuffle")
    if seed is not None:
        terminalreporter.line(f"order: shuffled with --hil-shuffle {seed}")
    terminalreporter.line(
        f"HIL tests: {ran} ran ({count['passed']} ok, {count['xfailed']} expected failures, "
        f"{count['xpassed']} unexpectedly ok) / {count['failed'] + count['error']} failing / "
        f"{count['skipped']} skipped")
    reasons = {}
    for r in hil("skipped"):
        if isinstance(r.longrepr, tuple):
            # "needs 7200 s of real time" and "needs 120 s ..." are one reason
            reason = re.sub(r"needs [0-9.]+ s of", "needs N s of",
                            r.longrepr[2].removeprefix("Skipped: "))
            reasons.setdefault(reason, []).append(r.nodeid)
    for reason, nodes in sorted(reasons.items(), key=lambda kv: -len(kv[1])):
        terminalreporter.line(f"  skipped {len(nodes)}: {reason}")
    for r in hil("failed") + hil("error"):
        terminalreporter.line(f"  FAILED {r.nodeid}")
