"""Campaign planning and state on the host: cohorts, the failure threshold, halting before
the next stage, resuming after an interruption, and the registry tables (own migrations)."""
import hashlib

import pytest

from edgekit.cli import main as cli_main
from edgekit.errors import EdgekitError
from edgekit.ota import campaign
from edgekit.ota import manifest as man
from edgekit.ota.bundle import Bundle
from edgekit.ota.campaign_db import CampaignStore
from edgekit.registry.db import LATEST, Registry


@pytest.mark.parametrize("text, total, sizes", [
    ("1,10%,50%,100%", 10, [1, 1, 5, 10]),
    ("1,50%,100%", 3, [1, 2, 3]),
    ("2,2,100%", 5, [2, 2, 5]),
    ("25%", 7, [2]),
    ("50,100%", 8, [8, 8]),
])
def test_cohorts_are_cumulative_and_capped(text, total, sizes):
    assert campaign.stage_sizes(campaign.parse_stages(text), total) == sizes


@pytest.mark.parametrize("text", ["", "0", "150%", "ten", "1,,2", "-3"])
def test_bad_stages_are_named(text):
    with pytest.raises(EdgekitError, match="stage"):
        campaign.parse_stages(text)


def test_failure_threshold_is_a_percentage():
    assert campaign.parse_rate("5%") == 0.05 and campaign.parse_rate("0%") == 0.0
    with pytest.raises(EdgekitError, match="percentage"):
        campaign.parse_rate("5")


def _bundle():
    files = [{"name": "a.mpy", "size": 3, "digest": hashlib.sha256(b"abc").digest()}]
    return Bundle(man.encode(man.build(9, "2.0.0", "esp32", "water_meter", "1.29.0", files,
                                       0)), [b"abc"])


@pytest.fixture
def reg_path(tmp_path):
    path = tmp_path / "reg.sqlite"
    with Registry(path) as reg:
        for i in range(10):
            reg.upsert_device(f"wm-{i:02d}", kind="water_meter", board="esp32",
                              status="provisioned")
        reg.upsert_device("wm-rp", kind="water_meter", board="rp2040", status="provisioned")
        reg.upsert_device("bin-1", kind="smart_bin", board="esp32", status="provisioned")
    return path


class FakeRunner(campaign.Runner):
    """The real runner with pushes replaced by a table of outcomes."""

    def __init__(self, *a, outcomes=None, **kw):
        super().__init__(*a, **kw)
        self.outcomes = outcomes or {}
        self.pushed = []

    def _push(self, device_id, port):
        self.pushed.append(device_id)
        outcome = self.outcomes.get(device_id, "installed")
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome, {"reason": "fake " + outcome}


def test_campaign_selects_the_bundles_class_and_halts_before_the_next_stage(reg_path):
    b = _bundle()
    c = campaign.create(reg_path, "c1", "b.ekota", b, campaign.parse_stages("1,30%,100%"),
                        0.0)
    with Registry(reg_path) as reg:
        ids = [d["device_id"] for d in CampaignStore(reg).devices("c1")]
    assert ids == [f"wm-{i:02d}" for i in range(10)]     # not the rp2040 one, not the bin
    assert c["state"] == "planned"
    ports = {d: "socket://x" for d in ids}
    r = FakeRunner(reg_path, "c1", b, None, None, ports, outcomes={"wm-02": "rolled_back"})
    report = r.run()
    assert report["state"] == "halted" and report["stages"] == [1, 3, 10]
    assert sorted(r.pushed) == ["wm-00", "wm-01", "wm-02"]      # stage 3 never started
    assert "wm-02 rolled_back" in report["note"] and "1 of 3" in report["note"]
    with Registry(reg_path) as reg:
        assert reg.events("wm-02", type="ota_rolled_back")[-1]["detail"]["campaign"] == "c1"
        assert reg.events("wm-00", type="ota_installed")
        assert reg.get("wm-00")["fw_version"] == "2.0.0"
        assert reg.schema_version == LATEST               # the registry's own schema untouched
    # resuming a halted campaign without fixing anything halts again, pushing nothing
    again = FakeRunner(reg_path, "c1", b, None, None, ports)
    assert again.run()["state"] == "halted" and again.pushed == []
    with Registry(reg_path) as reg:
        assert CampaignStore(reg).retry_failed("c1") == 1
    fixed = FakeRunner(reg_path, "c1", b, None, None, ports)
    report = fixed.run()
    assert report["state"] == "done" and report["counts"] == {"installed": 10}
    assert sorted(fixed.pushed) == ["wm-02"] + [f"wm-{i:02d}" for i in range(3, 10)]


def test_threshold_tolerates_failures_up_to_its_share(reg_path):
    b = _bundle()
    campaign.create(reg_path, "c2", "b", b, campaign.parse_stages("100%"), 0.2)
    ids = [f"wm-{i:02d}" for i in range(10)]
    r = FakeRunner(reg_path, "c2", b, None, None, {d: "p" for d in ids},
                   outcomes={"wm-03": "rejected", "wm-07": "failed"})
    assert r.run()["state"] == "done"                      # 2 of 10 = 20%, not above


def test_interrupted_campaign_resumes_without_redoing_finished_devices(reg_path):
    b = _bundle()
    campaign.create(reg_path, "c3", "b", b, campaign.parse_stages("100%"), 0.0)
    ids = [f"wm-{i:02d}" for i in range(10)]
    r = FakeRunner(reg_path, "c3", b, None, None, {d: "p" for d in ids}, parallel=1,
                   outcomes={"wm-04": KeyboardInterrupt()})
    with pytest.raises(KeyboardInterrupt):
        r.run()
    with Registry(reg_path) as reg:
        status = {d["device_id"]: d["status"] for d in CampaignStore(reg).devices("c3")}
    assert status["wm-04"] == "running" and status["wm-00"] == "installed"
    resumed = FakeRunner(reg_path, "c3", b, None, None, {d: "p" for d in ids}, parallel=1)
    assert resumed.run()["state"] == "done"
    assert "wm-00" not in resumed.pushed and "wm-04" in resumed.pushed


def test_unreachable_devices_wait_for_the_next_resume(reg_path):
    b = _bundle()
    campaign.create(reg_path, "c4", "b", b, campaign.parse_stages("100%"), 0.0)
    ports = {f"wm-{i:02d}": "p" for i in range(9)}          # wm-09 answered on no port
    report = FakeRunner(reg_path, "c4", b, None, None, ports).run()
    assert report["state"] == "running" and "not reached" in report["note"]
    assert report["counts"] == {"installed": 9, "unreachable": 1}


def test_names_are_unique_and_status_lists(reg_path, capsys):
    b = _bundle()
    campaign.create(reg_path, "c5", "b", b, campaign.parse_stages("1"), 0.0)
    with pytest.raises(EdgekitError, match="exists"):
        campaign.create(reg_path, "c5", "b", b, campaign.parse_stages("1"), 0.0)
    assert cli_main(["ota", "campaign", "status", "--registry", str(reg_path)]) == 0
    assert "c5" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli_main(["ota", "campaign", "start", "--help"])
    assert "--max-failures" in capsys.readouterr().out


def test_a_paused_campaign_starts_no_device_and_a_resume_finishes_it(reg_path):
    b = _bundle()
    campaign.create(reg_path, "p1", "b.ekota", b, campaign.parse_stages("1,100%"), 0.0)
    ports = {f"wm-{i:02d}": f"p{i}" for i in range(10)}
    paused_after = []

    class PausingRunner(FakeRunner):
        def _push(self, device_id, port):        # the operator pauses during the canary
            with Registry(reg_path) as reg:
                CampaignStore(reg).stop("p1", "paused", "paused by the operator")
            paused_after.append(device_id)
            return super()._push(device_id, port)

    r = PausingRunner(reg_path, "p1", b, None, None, ports, parallel=1)
    report = r.run()
    assert report["state"] == "paused" and r.pushed == ["wm-00"]     # the canary finished
    assert report["counts"] == {"installed": 1, "pending": 9}
    # a resume runs it again from where it stopped
    r2 = FakeRunner(reg_path, "p1", b, None, None, ports, parallel=2)
    report = r2.run()
    assert report["state"] == "done" and sorted(r2.pushed) == [f"wm-{i:02d}"
                                                                 for i in range(1, 10)]


def test_a_cancelled_campaign_is_not_resumed_and_progress_does_not_undo_it(reg_path):
    b = _bundle()
    campaign.create(reg_path, "x1", "b.ekota", b, campaign.parse_stages("100%"), 0.0)
    ports = {f"wm-{i:02d}": f"p{i}" for i in range(10)}
    with Registry(reg_path) as reg:
        store = CampaignStore(reg)
        store.set_state("x1", "running")
        store.stop("x1", "cancelled", "wrong build")
        store.set_state("x1", "done", unless_stopped=True)     # a runner's late progress
        assert store.get("x1")["state"] == "cancelled"
        with pytest.raises(EdgekitError, match="nothing to pause"):
            store.stop("x1", "paused", "")
        with pytest.raises(EdgekitError, match="start a new one"):
            store.hand_to_service("x1")
    r = FakeRunner(reg_path, "x1", b, None, None, ports)
    with pytest.raises(EdgekitError, match="cancelled \\(wrong build\\)"):
        r.run()
    assert r.pushed == []


def test_one_worker_holds_a_service_campaign_until_its_lease_runs_out(reg_path):
    b = _bundle()
    campaign.create(reg_path, "s1", "b.ekota", b, campaign.parse_stages("100%"), 0.0)
    campaign.create(reg_path, "s2", "b.ekota", b, campaign.parse_stages("100%"), 0.0)
    with Registry(reg_path) as reg:
        store = CampaignStore(reg)
        assert store.claim("w1", 1000.0, 120) is None           # left to the CLI: not theirs
        store.hand_to_service("s1")
        assert store.claim("w1", 1000.0, 120) == "s1"
        assert store.claim("w2", 1010.0, 120) is None           # w1 holds it
        assert store.claim("w1", 1010.0, 120) == "s1"           # its own, again
        assert store.renew("s1", "w1", 1200.0)
        assert not store.renew("s1", "w2", 1200.0)
        assert store.claim("w2", 1201.0, 120) == "s1"           # w1's lease ran out
        assert not store.renew("s1", "w1", 1300.0)              # w1 lost it
        store.hand_to_service("s2")
        assert store.claim("w1", 1202.0, 120, exclude=["s2"]) is None
        store.release("s1", "w2")
        assert store.claim("w3", 1203.0, 120) == "s1"
        store.stop("s1", "paused", "")
        assert store.claim("w3", 1203.0, 120) == "s2"           # a paused one is not run
