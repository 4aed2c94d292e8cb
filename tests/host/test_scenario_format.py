"""The HIL scenario format: malformed files and failed expectations are errors, not passes."""
import pytest

from edgekit.hil import scenario


def write(tmp_path, text):
    p = tmp_path / "s.toml"
    p.write_text(text)
    return p


def test_needs_a_kind_and_one_action_per_step(tmp_path):
    with pytest.raises(scenario.ScenarioError, match="kind"):
        scenario.load(write(tmp_path, "[scenario]\nname='x'\n"))
    with pytest.raises(scenario.ScenarioError, match="exactly one"):
        scenario.load(write(tmp_path, "[scenario]\nkind='water_meter'\n[[step]]\n"
                                      "advance=1\nset={a=1}\n"))


@pytest.mark.parametrize("text, seconds", [(90, 90), ("90s", 90), ("15m", 900), ("7h", 25200),
                                           ("2d", 172800)])
def test_durations(text, seconds):
    assert scenario.duration(text) == seconds


def test_bad_duration_and_failed_expectations():
    with pytest.raises(scenario.ScenarioError):
        scenario.duration("soon")
    with pytest.raises(scenario.ScenarioError, match=">= 10"):
        scenario._in_range(5, {"min": 10}, "volume")
    with pytest.raises(scenario.ScenarioError, match="expected 'b'"):
        scenario._in_range("a", {"equals": "b"}, "valve")
    scenario._in_range(10, {"min": 10, "max": 10}, "volume")
