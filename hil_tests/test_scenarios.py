"""Every scenario file in hil_tests/scenarios/ runs here, through the same fixtures, on the
emulator or on a bench (steps a bench cannot do skip with the reason)."""
from pathlib import Path

import pytest

from edgekit.hil import scenario

SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.toml"))


@pytest.fixture
def scenario_target(request):
    """The plugin's `board` (emulated, or a tray board brought to factory state) for the
    scenario file's kind."""
    path = request.param
    head, _ = scenario.load(path)
    request.applymarker(pytest.mark.hil(kind=head["kind"]))
    return request.getfixturevalue("board"), path


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
