"""A battery device on the network (issue 15, SPEC 13.5 `connect = "to_report"`): it connects
to report and, every poll_s, to take what the broker queued for it, then disconnects and
powers its radio down. Its telemetry is stored and acknowledged as a connected device's is;
a command sent while it sleeps waits in the broker and runs at its next wake, not before."""
import json
import time

import pytest

pytest.importorskip("amqtt", reason="amqtt (the embedded broker) is not installed: make test "
                                    "installs it")
pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed")

from edgekit import catalog as C  # noqa: E402
from edgekit.cli import main as edgekit  # noqa: E402
from edgekit.fleet.broker import EmbeddedBroker  # noqa: E402
from edgekit.keys.store import KeyStore  # noqa: E402
from edgekit.registry import telemetry as store  # noqa: E402
from edgekit.registry.db import Registry  # noqa: E402
from fleet_rig import (HOUR, Spy, answers_of, diag, provision_networked,  # noqa: E402
                       run_service, step_until)
from operator_cli import fleet_home  # noqa: E402,F401 - a fixture

pytestmark = pytest.mark.hil(kind="water_meter")
POLL_S = 1800


@pytest.mark.hil(sim_s=10920)  # a wait it needs: skips early on a bench
def test_a_battery_meter_sleeps_between_reports_and_takes_queued_commands_when_it_wakes(
        board, world, clock, fleet_home, capsys, tmp_path):
    from edgekit.fleet import command as fleet_command
    broker = EmbeddedBroker().start()
    registry_path, device_id = provision_networked(
        board, fleet_home, capsys, tmp_path, broker.url,
        {"connect": "to_report", "poll_s": POLL_S}, {"report_s": HOUR})
    keys = KeyStore(fleet_home / "keys")
    held, stop, thread = run_service(registry_path, keys, broker.host, broker.port)
    try:
        step_until(clock, lambda: "svc" in held and held["svc"].connected.is_set(), "service")
        svc = held["svc"]
        net = diag(board, capsys)["net"]
        assert net["connect"] == "to_report" and net["poll_s"] == POLL_S
        # Its first wake: connected, took what the broker held (nothing), asleep again.
        step_until(clock, lambda: diag(board, capsys)["net"]["sleeps"] >= 1, "the first sleep")

        world.set(flow_lpm=3.0)
        clock.advance(3 * HOUR + 120)      # three hourly packs, each pushed as it is made
        # The service's last ack saying 0 can be an older push's: wait for the device's own
        # journal too (read over the cable), as the meter's next wake may push the newest.
        step_until(clock, lambda: svc.ingest.pending.get(device_id) == 0
                   and diag(board, capsys)["telemetry"]["pending"] == 0,
                   "the service's acks")
        d = diag(board, capsys)
        assert d["telemetry"]["pending"] == 0
        with Registry(registry_path) as reg:
            packs = sorted({r["journal_seq"] for r in store.telemetry(reg, device_id)})
        assert packs == list(range(1, d["telemetry"]["last"] + 1)) and len(packs) >= 3
        net = d["net"]
        # Asleep between reports: not connected now, and one connection per wake (reports
        # and command polls), each ended by its own sleep, none by a failure.
        assert not net["connected"]
        assert net["connects"] >= 4 and net["sleeps"] >= net["connects"] - 1
        assert net["failures"] == 0

        # A command for the sleeping meter waits in the broker until its next poll wake.
        ring = fleet_command.device_keyring(Registry(registry_path), device_id)
        spy = Spy(broker, device_id)
        try:
            connects = net["connects"]
            assert edgekit(["command", "--via", "fleet", device_id, "valve", "open=false",
                            "--broker", broker.url, "--json"]) == 0
            assert json.loads(capsys.readouterr().out)["queued"] is True
            clock.advance(60)                   # awake (its sample task), radio asleep
            time.sleep(0.5)
            assert spy.up.empty(), "the command ran before the meter's next wake"
            answers = []
            step_until(clock, answers_of(spy, ring, C.COMMAND_RESULT, answers),
                       "the command at the next wake", step_s=60,
                       limit_s=90)
            assert answers[0].payload[C.K_RESULT] == {"valve": "closed", "requested": False}
        finally:
            spy.close()
        # ... and it goes back to sleep once the broker is quiet (its connect is taken in
        # steps, so the answer can come before the quiet time has passed).
        step_until(clock, lambda: not diag(board, capsys)["net"]["connected"],
                   "the meter asleep again", step_s=2)
        assert diag(board, capsys)["net"]["connects"] > connects
    finally:
        stop.set()
        thread.join(5)
        broker.stop()
