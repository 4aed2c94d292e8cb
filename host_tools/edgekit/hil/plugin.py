"""pytest plugin (entry point `pytest11`): one HIL suite against emulated or real boards.

    --board emu:esp32[:KIND]     an emulated board (default when no --board is given)
    --board serial:/dev/ttyUSB0  a real board on a serial port
    --board socket://HOST:PORT   anything pyserial reaches by URL
Several --board options give multi-device tests their boards, in order (`boards` fixture).

Fixtures: `board` (a Target: transport(), url, world, clock, powercut(), reset(), faults),
`boards`, `world`, `clock`, `hil_fleet` (a throwaway test fleet), `provisioned` (a factory:
provisioned(kind) -> Device with an operator-signed session). Tests marked
`@pytest.mark.hil(kind="water_meter")` get a board of that kind on the emulator.
Scenario files `hil_tests/scenarios/*.toml` run through hil_tests/test_scenarios.py with
the same fixtures, so they run unchanged on the emulator and on a bench.
"""
import pytest

from edgekit.hil.rig import Rig, RigError
from edgekit.hil.targets import BoardSpec, EmulatedTarget, RealTarget

DEFAULT_BOARD = "emu:esp32"


def pytest_addoption(parser):
    group = parser.getgroup("edgekit", "edgekit hardware-in-the-loop")
    group.addoption("--board", action="append", default=[], metavar="SPEC",
                    help="board under test: emu:BOARD[:KIND], serial:PORT or socket://HOST:PORT "
                         "(repeat for multi-device tests; default emu:esp32)")
    group.addoption("--rig", default=None, metavar="FILE",
                    help="bench rig description (TOML) mapping world stimuli to rig channels")
    group.addoption("--max-real-wait", type=float, default=120.0, metavar="SECONDS",
                    help="on a real board, skip tests that need more real time than this")


def pytest_configure(config):
    config.addinivalue_line("markers", "hil(kind=None, time='paused', boards=1): a hardware-in-"
                            "the-loop test; kind picks the app and the emulator's world model")
    config._edgekit_specs = [BoardSpec(s) for s in (config.getoption("--board")
                                                    or [DEFAULT_BOARD])]
    # A damaged rig file is a usage error, said once before any test runs (not a traceback
    # from inside a fixture, once per test).
    path = config.getoption("--rig")
    try:
        config._edgekit_rig = Rig.load(path) if path else None
    except RigError as exc:
        raise pytest.UsageError(str(exc)) from None


def board_specs(config):
    return config._edgekit_specs


@pytest.fixture(scope="session")
def edgekit_emulator(pytestconfig):
    if not any(s.emulated for s in board_specs(pytestconfig)):
        yield None
        return
    from edgekit.emu import Emulator
    emu = Emulator()
    yield emu
    emu.close()


@pytest.fixture(scope="session")
def edgekit_rig(pytestconfig):
    return pytestconfig._edgekit_rig


def _marker(request):
    m = request.node.get_closest_marker("hil")
    return dict(m.kwargs) if m else {}


@pytest.fixture
def boards(request, pytestconfig, edgekit_emulator, edgekit_rig):
    opts = _marker(request)
    specs = board_specs(pytestconfig)
    wanted = opts.get("boards", 1)
    if len(specs) < wanted:
        if specs[0].emulated:
            specs = specs + [specs[0]] * (wanted - len(specs))
        else:
            pytest.skip(f"needs {wanted} boards; give --board {wanted} times")
    targets = []
    try:
        for spec in specs[:max(wanted, 1)]:
            if spec.emulated:
                kind = opts.get("kind") or spec.kind
                spec = BoardSpec(f"emu:{spec.board}:{kind}" if kind else f"emu:{spec.board}")
                targets.append(EmulatedTarget(edgekit_emulator, spec,
                                              time_mode=opts.get("time", "paused"),
                                              **opts.get("options", {})))
            else:
                targets.append(RealTarget(spec, edgekit_rig,
                                          pytestconfig.getoption("--max-real-wait")))
        yield targets
    finally:
        for t in targets:
            t.close()


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
    hil = [r for key in ("passed", "failed", "skipped") for r in stats.get(key, [])
           if "hil_tests" in getattr(r, "nodeid", "")]
    if not specs or not hil:
        return
    count = {k: sum(1 for r in stats.get(k, []) if "hil_tests" in r.nodeid)
             for k in ("passed", "failed", "skipped")}
    terminalreporter.section("edgekit HIL summary")
    terminalreporter.line("boards: " + ", ".join(s.text for s in specs))
    terminalreporter.line(f"HIL tests: {count['passed']} ok / {count['failed']} failing / "
                          f"{count['skipped']} skipped")
    for r in stats.get("skipped", []):
        if "hil_tests" in r.nodeid and isinstance(r.longrepr, tuple):
            terminalreporter.line(f"  skipped {r.nodeid}: {r.longrepr[2]}")
