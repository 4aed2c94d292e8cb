"""The fleet on the network, for every kind but the meter (issue 15, SPEC 13; the meter's are
test_fleet_network.py, test_fleet_sleepy.py and test_ota_network.py): an emulated env sensor,
smart bin and water ATM, each provisioned with the embedded broker by `edgekit provision`,
report over MQTT to the fleet service, which stores every record once, across a network
outage and a power cut, and only then acknowledges it; an alarm each kind raises reaches
the service (its log line, its webhook, the stored events `edgekit devices telemetry`
shows), also one raised while the network was down; a command sent with `edgekit command
--via fleet` while the device does not poll runs at its next wake; `edgekit ota push --via
fleet` updates it."""
import http.server
import io
import json
import threading
import time

import pytest

pytest.importorskip("amqtt", reason="amqtt (the embedded broker) is not installed: make test "
                                    "installs it")
pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed")

from edgekit import catalog as C  # noqa: E402
from edgekit.cli import main as edgekit  # noqa: E402
from edgekit.fleet import command as fleet_command  # noqa: E402
from edgekit.fleet.broker import EmbeddedBroker  # noqa: E402
from edgekit.fleet.service import AlarmSink  # noqa: E402
from edgekit.keys.store import KeyStore  # noqa: E402
from edgekit.ota.testing import verify_active  # noqa: E402
from edgekit.protocol import messages  # noqa: E402
from edgekit.registry.db import Registry  # noqa: E402
from fleet_rig import (Settled, Spy, answers_of, diag, provision_networked,  # noqa: E402
                       run_service, step_until)
from operator_cli import fleet_home  # noqa: E402,F401 - a fixture
from ota_rig import CliPush, signed_bundle  # noqa: E402

# Lean on wakes (each runs through the real VM), real in behaviour: a pack every 10 min,
# sent at once (the bin, the kiosk) or by the env sensor's push task.
CONFIG = {
    "env_sensor": {"sample_s": 300, "pm_period_s": 600, "pm_readings": 3, "pm_gap_ms": 2000,
                   "report_s": 600, "push_s": 600},
    "smart_bin": {"guard_s": 900, "sample_s": 300, "report_s": 600},
    "water_atm": {"plant_s": 300, "report_s": 600},
    "water_meter": {"report_s": 600},
}
REPORT_S = 600
# How each reaches the broker (SPEC 13.5): the battery sensor and the solar bin connect to
# report and every poll_s to take what the broker queued; the mains kiosk stays connected.
NET = {
    "env_sensor": {"connect": "to_report", "poll_s": 600},
    "smart_bin": {"connect": "to_report", "poll_s": 600},
    "water_atm": {"connect": "always", "poll_s": 2},
    "water_meter": {"connect": "to_report", "poll_s": 600},     # on a lithium cell
}
# The meter has its own network tests; it joins only the one of a fix in the core (the
# event backlog, which every kind shares).
KINDS = ["env_sensor", "smart_bin", "water_atm"]

# An alarm each kind raises, what the world does to raise it and to clear it, and the
# events (name, set?) the device journals for it, in order.
ALARMS = {
    # PM2.5 above 50 ug/m3 (the default rule, the EAQI's "very poor" band), for a PM cycle
    "env_sensor": ({"pm25": 80.0}, {"pm25": 10.0},
                   [("pm25", True), ("pm25", False)]),
    # a fire in the waste: the sensor's ALERT pin wakes the bin; it clears 10 C below fire_c
    "smart_bin": ({"temp_c": 85.0}, {"temp_c": 20.0},
                  [("fire", True), ("fire", False)]),
    # the tank runs dry: out of service (empty) and the low-tank warning, then refilled
    "water_atm": ({"tank_l": 20.0}, {"tank_l": 900.0},
                  [("tank_empty", True), ("tank_low", True),
                   ("tank_empty", False), ("tank_low", False)]),
    # a magnet held against the meter; it clears a minute after it is gone
    "water_meter": ({"tamper": True}, {"tamper": False},
                    [("tamper", True), ("tamper", False)]),
}

# A command each kind answers without changing anything, and what its answer must hold.
COMMANDS = {"env_sensor": ("read", {"temp", "pm25", "alarms"}),
            "smart_bin": ("read", {"fill", "soc", "level"}),
            "water_atm": ("status", {"in_service", "quality", "alarms"})}

# For the update the battery devices wake every 2 s, not every 10 min: real time, as
# test_ota_network.py (a trial's deadline runs on the device clock).
OTA_NET = {kind: dict(NET[kind], poll_s=min(NET[kind]["poll_s"], 2)) for kind in KINDS}


def each_kind(kinds=KINDS, **hil):
    return [pytest.param(kind, marks=pytest.mark.hil(kind=kind, **hil), id=kind)
            for kind in kinds]


@pytest.fixture
def broker():
    b = EmbeddedBroker().start()
    yield b
    b.stop()


class Service:
    """`fleet serve` on a thread (fleet_rig.run_service), stopped and started again as an
    operator restarts it; its alarm log and webhook as the operator sees them."""

    def __init__(self, registry_path, keys, broker, clock, alarms=None):
        self.args = (registry_path, keys, broker.host, broker.port)
        self.clock, self.alarms = clock, alarms
        self.start()

    def start(self):
        self.held, self.stop_event, self.thread = run_service(*self.args,
                                                              on_alarm=self.alarms)
        step_until(self.clock, lambda: "svc" in self.held and
                   self.held["svc"].connected.is_set(), "the service's connect")
        self.ingest = self.held["svc"].ingest

    def stop(self):
        self.stop_event.set()
        self.thread.join(5)


class Webhook:
    """An HTTP endpoint on localhost that keeps the JSON documents POSTed to it, in order:
    the receiving end of `fleet serve --webhook URL`."""

    def __init__(self):
        self.docs = []
        docs = self.docs

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                docs.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alarms"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def stored(capsys, device_id):
    """(journal seq of every stored pack, [(event, set?)]) as `edgekit devices telemetry`
    shows them: a pack stored twice would show twice."""
    assert edgekit(["devices", "telemetry", device_id, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    packs = [r["journal_seq"] for r in doc["telemetry"] if r["idx"] == 0]
    return packs, [(e["name"], bool(e["active"])) for e in doc["events"]]


def pushes(spy, ring):
    """[(first, last journal seq)] of each TELEMETRY the device published since last asked."""
    out = []
    while not spy.up.empty():
        msg = messages.open_body(spy.up.get(), ring)
        if msg.type == C.TELEMETRY and msg.payload[C.K_RECORDS]:
            out.append((msg.payload[C.K_FROM], msg.payload[C.K_UPTO]))
    return out


def settle(clock, service, device_id, step_s=2, limit_s=60.0):
    step_until(clock, Settled(service.ingest, device_id),
               "the device's journal to empty on the service's acks", step_s=step_s,
               limit_s=limit_s, show=service.ingest.stats)


@pytest.mark.parametrize("kind", each_kind(sim_s=7 * REPORT_S + 600))
def test_telemetry_survives_an_outage_and_a_power_cut_with_no_gap_or_duplicate(
        kind, board, world, clock, broker, fleet_home, capsys, tmp_path):
    registry_path, device_id = provision_networked(
        board, fleet_home, capsys, tmp_path, broker.url, NET[kind], CONFIG[kind], kind=kind)
    keys = KeyStore(fleet_home / "keys")
    service = Service(registry_path, keys, broker, clock)
    with Registry(registry_path) as reg:
        ring = fleet_command.device_keyring(reg, device_id)
    step = 60 if NET[kind]["connect"] == "to_report" else 2
    try:
        clock.advance(2 * REPORT_S + 30)
        settle(clock, service, device_id, step)
        d = diag(board, capsys)
        last, boots = d["telemetry"]["last"], d["boots"]
        assert last >= 2
        assert stored(capsys, device_id)[0] == list(range(1, last + 1))

        # The board's network goes (its Wi-Fi, its modem's cell) while it keeps reporting.
        world.set(network=False)
        clock.advance(REPORT_S + 30)
        during = diag(board, capsys)
        assert during["telemetry"]["pending"] >= 1 and not during["net"]["connected"]
        assert stored(capsys, device_id)[0] == list(range(1, last + 1))
        service.ingest.pending.pop(device_id, None)
        world.set(network=True)
        settle(clock, service, device_id, max(step, 20), 90)
        d = diag(board, capsys)
        last = d["telemetry"]["last"]
        assert d["telemetry"]["pending"] == 0 and last >= during["telemetry"]["last"]
        assert stored(capsys, device_id)[0] == list(range(1, last + 1))

        # The service is down: the device publishes, nobody acks, each push starts again at
        # its first unacknowledged pack. Its power is cut; once the service is back it takes
        # what the broker held for it and what the device sends again, each pack once. No
        # serial command meanwhile: the device's answer would be newer than what is queued,
        # which the service would then drop as replays (the registry keeps one last seq).
        service.stop()
        spy = Spy(broker, device_id)
        try:
            clock.advance(2 * REPORT_S + 30)
            while_down = pushes(spy, ring)
            assert len(while_down) >= 2, f"pushes while the service was down: {while_down}"
            assert while_down[0][0] == last + 1 and while_down[-1][0] == last + 1, \
                f"the journal let packs go without an ack: {while_down}"
            board.powercut()
            clock.advance(REPORT_S + 30)
            after_cut = pushes(spy, ring)
            assert after_cut and after_cut[0][0] == last + 1, \
                f"packs lost in the power cut: {after_cut}"
            service.start()
            settle(clock, service, device_id, max(step, 20), 90)
        finally:
            spy.close()
        d = diag(board, capsys)
        assert d["boots"] == boots + 1 and d["telemetry"]["pending"] == 0
        last = d["telemetry"]["last"]
        assert last >= while_down[-1][1]
        assert stored(capsys, device_id)[0] == list(range(1, last + 1))    # no gap, no dup
    finally:
        service.stop()


@pytest.mark.parametrize("kind", each_kind(sim_s=2 * REPORT_S + 1200))
def test_an_alarm_reaches_the_service_its_log_and_its_webhook(
        kind, board, world, clock, broker, fleet_home, capsys, tmp_path):
    registry_path, device_id = provision_networked(
        board, fleet_home, capsys, tmp_path, broker.url, NET[kind], CONFIG[kind], kind=kind)
    raise_it, clear_it, expected = ALARMS[kind]
    hook, log = Webhook(), io.StringIO()
    service = Service(registry_path, KeyStore(fleet_home / "keys"), broker, clock,
                      alarms=AlarmSink(hook.url, out=log))
    try:
        world.set(**raise_it)
        clock.advance(REPORT_S + 30)
        world.set(**clear_it)
        clock.advance(REPORT_S + 30)
        # The device pushes each event; the service stores it, says so, and acks it through
        # a fetch of the event journal, which then empties.
        step_until(clock, lambda: len(hook.docs) >= len(expected) and
                   service.ingest.counts["events_stored"] >= len(expected),
                   "the alarms at the service", step_s=20, limit_s=60,
                   show=lambda: (service.ingest.stats(), hook.docs))
        settle(clock, service, device_id, 20, 60)
    finally:
        service.stop()
        hook.close()
    assert stored(capsys, device_id)[1] == expected
    # Each POST goes from its own thread (a slow webhook never holds up storing), so they
    # may arrive in any order: the receiver orders them by journal_seq.
    posted = sorted(hook.docs, key=lambda d: d["journal_seq"])
    assert [(d["alarm"], d["active"]) for d in posted] == expected
    assert {d["device"] for d in hook.docs} == {device_id}
    lines = [line.split()[:4] for line in log.getvalue().splitlines()]
    assert lines == [["ALARM", "SET" if on else "CLEARED", device_id, name]
                     for name, on in expected]
    d = diag(board, capsys)
    assert d["events"]["pending"] == 0 and d["events"]["last"] == len(expected)


@pytest.mark.parametrize("kind", each_kind(sim_s=3 * REPORT_S + 600,
                                           kinds=KINDS + ["water_meter"]))
def test_an_alarm_raised_while_the_network_is_down_reaches_the_service_once_it_is_back(
        kind, board, world, clock, broker, fleet_home, capsys, tmp_path):
    """Pushed once when it happened, to nobody: the reporting schedule sends the event
    journal's backlog (services.push_event_backlog) once the network is back."""
    registry_path, device_id = provision_networked(
        board, fleet_home, capsys, tmp_path, broker.url, NET[kind], CONFIG[kind], kind=kind)
    raise_it, clear_it, expected = ALARMS[kind]
    log = io.StringIO()
    service = Service(registry_path, KeyStore(fleet_home / "keys"), broker, clock,
                      alarms=AlarmSink(None, out=log))
    try:
        clock.advance(REPORT_S)
        world.set(network=False)
        world.set(**raise_it)
        clock.advance(REPORT_S + 30)
        assert service.ingest.counts["events_stored"] == 0
        world.set(network=True)
        world.set(**clear_it)
        clock.advance(REPORT_S + 30)
        step_until(clock, lambda: service.ingest.counts["events_stored"] >= len(expected),
                   "the alarms at the service", step_s=60, limit_s=30,
                   show=lambda: (service.ingest.stats(), log.getvalue()))
        settle(clock, service, device_id, max(NET[kind]["poll_s"] // 10, 2), 30)
    finally:
        service.stop()
    assert stored(capsys, device_id)[1] == expected
    assert [line.split()[1:4] for line in log.getvalue().splitlines()] == \
        [["SET" if on else "CLEARED", device_id, name] for name, on in expected]
    assert diag(board, capsys)["events"]["pending"] == 0


@pytest.mark.parametrize("kind", each_kind(sim_s=1800))
def test_a_command_sent_while_the_device_does_not_poll_runs_at_its_next_wake(
        kind, board, world, clock, broker, fleet_home, capsys, tmp_path):
    registry_path, device_id = provision_networked(
        board, fleet_home, capsys, tmp_path, broker.url, NET[kind], kind=kind)
    sleepy = NET[kind]["connect"] == "to_report"

    def awake_once():
        net = diag(board, capsys)["net"]
        return net["sleeps"] >= 1 if sleepy else net["connected"]
    step_until(clock, awake_once, "the first connection", step_s=30 if sleepy else 2)
    connects = diag(board, capsys)["net"]["connects"]
    with Registry(registry_path) as reg:
        ring = fleet_command.device_keyring(reg, device_id)
    name, holds = COMMANDS[kind]
    spy = Spy(broker, device_id)
    try:
        # No serial command from here until it has run: signed later by the same operator
        # key, it would make the queued one a replay (docs/fleet.md).
        assert edgekit(["command", "--via", "fleet", device_id, name, "--broker", broker.url,
                        "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["queued"] is True
        if sleepy:
            clock.advance(60)           # awake for its sampling, its radio asleep
        time.sleep(0.5)                 # (a paused board's network task does not run)
        assert spy.up.empty(), "the command ran before the device's next wake"
        answers = []
        step_until(clock, answers_of(spy, ring, C.COMMAND_RESULT, answers),
                   "the command at the next wake",
                   step_s=60 if sleepy else 2, limit_s=60)
    finally:
        spy.close()
    assert len(answers) == 1 and answers[0].sender == device_id
    assert answers[0].payload[C.K_NAME] == name
    assert holds <= set(answers[0].payload[C.K_RESULT]), answers[0].payload
    # One wake took it (a battery device connects once per wake; the kiosk stayed on).
    assert diag(board, capsys)["net"]["connects"] == connects + (1 if sleepy else 0)


@pytest.mark.parametrize("kind", each_kind(
    time="real", bench="its broker listens on this host's loopback and the slot it booted "
                       "is read from the emulator's flash"))
def test_an_update_pushed_through_the_broker_installs(kind, board, broker, fleet_home, capsys,
                                                      tmp_path):
    _, device_id = provision_networked(board, fleet_home, capsys, tmp_path, broker.url,
                                       OTA_NET[kind], kind=kind)
    bundle = signed_bundle(fleet_home, "1.0.3", 3, app_only=True, kind=kind)
    path = bundle.save(tmp_path / f"{kind}.ekota")
    push = CliPush(device_id, path, broker, "--patience", "60")
    assert push.finish(120) == 0, push.stderr()
    summary = push.events[-1]
    assert summary["event"] == "summary", push.events[-3:]
    assert (summary["status"], summary["version"], summary["running"]) == \
        ("installed", "1.0.3", "1.0.3")
    assert summary["stats"]["sent_bytes"] < 2 * summary["stats"]["stream_bytes"]
    assert verify_active(board.faults.flash) == ("a", "1.0.3", None)
    with Registry(fleet_home / "registry.sqlite") as reg:
        assert reg.get(device_id)["fw_version"] == "1.0.3"
    # The updated app reports on: its kind's command answers through the broker.
    name, holds = COMMANDS[kind]
    assert edgekit(["command", "--via", "fleet", device_id, name, "--broker", broker.url,
                    "--wait", "30", "--json"]) == 0
    assert holds <= set(json.loads(capsys.readouterr().out)["result"])


@pytest.mark.hil(boards=3, kinds=["water_atm", "water_atm", "env_sensor"], time="real",
                 bench="a mixed fleet and a failing flow meter need the emulator")
def test_a_campaign_updates_only_its_kind_and_halts_on_a_failing_canary(
        boards, broker, fleet_home, capsys, tmp_path):
    """Two kiosks and an env sensor on the broker: the kiosks' campaign never touches the
    sensor; its canary's flow meter fails in the trial (the critical idle task), it rolls
    back and the rollout halts; resumed once repaired, both kiosks run the update."""
    kinds = ["water_atm", "water_atm", "env_sensor"]
    ids = []
    for board, kind in zip(boards, kinds):
        ids.append(provision_networked(board, fleet_home, capsys, tmp_path, broker.url,
                                       {"poll_s": 1}, kind=kind)[1])
    atms = sorted(ids[:2])                  # the campaign takes them in device id order
    by_id = dict(zip(ids, boards))
    with Registry(fleet_home / "registry.sqlite") as reg:
        sensor_version = reg.get(ids[2])["fw_version"]
    by_id[atms[0]].world.fault("flow", "nack")
    # A trial of 15 s (not 30): the canary's rollback is what the test waits for.
    path = signed_bundle(fleet_home, "1.0.7", 7, app_only=True, kind="water_atm",
                         deadline=15).save(tmp_path / "atm.ekota")
    via = ["--via", "fleet", "--broker", broker.url, "--timeout", "5", "--json"]
    assert edgekit(["ota", "campaign", "start", str(path), "--name", "atm-net", "--stages",
                    "1,100%", "--max-failures", "0%"] + via) == 1
    report = json.loads(capsys.readouterr().out)
    status = {d["device_id"]: d["status"] for d in report["devices"]}
    assert report["state"] == "halted"
    assert status == {atms[0]: "rolled_back", atms[1]: "pending"}     # the sensor: not in it

    by_id[atms[0]].world.fault("flow", "none")
    assert edgekit(["ota", "campaign", "resume", "atm-net", "--retry-failed"] + via) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["state"] == "done" and report["counts"] == {"installed": 2}
    for device_id in atms:
        assert verify_active(by_id[device_id].faults.flash) == ("a", "1.0.7", None)
    with Registry(fleet_home / "registry.sqlite") as reg:
        assert [reg.get(d)["fw_version"] for d in atms] == ["1.0.7", "1.0.7"]
        assert reg.get(ids[2])["fw_version"] == sensor_version
