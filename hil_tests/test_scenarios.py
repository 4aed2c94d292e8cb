"""Every scenario file in hil_tests/scenarios/ runs here, through the same fixtures, on the
emulator or on a bench (steps a bench cannot do skip with the reason)."""
from pathlib import Path

import pytest

from edgekit.hil import scenario
from edgekit.hil.targets import BoardSpec, EmulatedTarget, RealTarget

SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.toml"))


@pytest.fixture
def scenario_target(request, pytestconfig, edgekit_emulator, edgekit_rig):
    path = request.param
    head, _ = scenario.load(path)
    spec = pytestconfig._edgekit_specs[0]
    if spec.emulated:
        target = EmulatedTarget(edgekit_emulator, BoardSpec(f"emu:{spec.board}:{head['kind']}"))
    else:
        target = RealTarget(spec, edgekit_rig, pytestconfig.getoption("--max-real-wait"))
    yield target, path
    target.close()


@pytest.mark.parametrize("scenario_target", SCENARIOS, ids=[p.stem for p in SCENARIOS],
                         indirect=True)
def test_scenario(scenario_target, hil_fleet):
    from edgekit.hil.devices import provision
    target, path = scenario_target
    made = []

    def provisioned(kind, config=None):
        made.append(provision(target, hil_fleet, kind, config=config))
        return made[-1]

    try:
        scenario.Runner(target, provisioned).run(path)
    finally:
        for d in made:
            d.close()
