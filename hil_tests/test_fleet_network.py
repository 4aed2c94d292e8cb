"""The network path end to end (issue 15, SPEC 13): an emulated water meter provisioned with
the embedded broker publishes its telemetry over MQTT to `fleet serve`, which stores every
record once and acknowledges; only then does the meter's journal let them go. A forged and a
replayed message injected straight into the broker are refused (and counted) by the service,
a replayed ack by the device; a broker stopped and restarted loses nothing."""
import json
import threading
import time

import pytest

pytest.importorskip("amqtt", reason="amqtt (the embedded broker) is not installed: make test "
                                    "installs it")
pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed")

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from edgekit import catalog as C  # noqa: E402
from edgekit.cli import main as edgekit  # noqa: E402
from edgekit.fleet import topics  # noqa: E402
from edgekit.fleet.broker import EmbeddedBroker  # noqa: E402
from edgekit.keys.store import KeyStore  # noqa: E402
from edgekit.protocol import messages  # noqa: E402
from edgekit.registry import telemetry as store  # noqa: E402
from edgekit.registry.db import Registry  # noqa: E402
from fleet_rig import (HOUR, Settled, Spy, diag, provision_networked, run_service,  # noqa: E402
                       step_until, stored)
from operator_cli import PASS, fleet_home  # noqa: E402,F401 - a fixture

pytestmark = pytest.mark.hil(kind="water_meter")


@pytest.mark.hil(sim_s=7200)  # a wait it needs: skips early on a bench
def test_a_meter_reports_over_mqtt_and_nothing_is_lost(board, world, clock, fleet_home,
                                                       capsys, tmp_path):
    broker = EmbeddedBroker().start()
    registry_path, device_id = provision_networked(
        board, fleet_home, capsys, tmp_path, broker.url, {"poll_s": 2, "keepalive": 60},
        {"report_s": 1800})
    keys = KeyStore(fleet_home / "keys")

    def record(svc):
        publish = svc.client.publish

        def recorded(topic, body, **kw):    # what the service sends, for a replay later
            held.setdefault("down", []).append(bytes(body))
            return publish(topic, body, **kw)
        svc.client.publish = recorded
    held, stop, thread = run_service(registry_path, keys, broker.host, broker.port,
                                     setup=record)
    spy = Spy(broker, device_id)
    try:
        step_until(clock, lambda: "svc" in held and held["svc"].connected.is_set(), "service")
        svc = held["svc"]
        # Credentials never leave the device: diag shows the broker, not a password.
        net = diag(board, capsys)["net"]
        assert net["broker"] == broker.url and "password" not in json.dumps(net)

        world.set(flow_lpm=3.0)
        clock.advance(2 * HOUR)     # hourly packs, reported every 30 min over the network
        # No serial command meanwhile: it would be signed by the same operator key with a
        # higher seq than an ack still in flight (the service re-signs such an ack once).
        acked = Settled(svc.ingest, device_id)
        step_until(clock, acked, "the meter's journal to empty on the service's acks",
                   show=svc.ingest.stats)
        d = diag(board, capsys)
        first = d["telemetry"]["last"]
        assert first >= 2 and d["telemetry"]["pending"] == 0 and d["net"]["connected"]
        assert stored(registry_path, device_id) == list(range(1, first + 1))
        captured = spy.up.get(timeout=5)            # a genuine TELEMETRY, already stored
        ack = held["down"][0]                       # the service's first genuine ack

        # Injected straight into the broker (past its ACL): a replay and a forgery.
        before = dict(svc.ingest.dropped)
        broker.inject(topics.up(device_id), captured)
        forged = messages.signed(C.TELEMETRY, {C.K_RECORDS: [[first + 1, []]],
                                               C.K_UPTO: first + 1},
                                 Ed25519PrivateKey.generate(), 10 ** 12, device_id)
        broker.inject(topics.up(device_id), forged)
        step_until(clock, lambda: svc.ingest.dropped["replayed"] == before["replayed"] + 1
                   and svc.ingest.dropped["unknown_key"] == before["unknown_key"] + 1,
                   "the service's refusals", show=svc.ingest.stats)
        # A replayed ack to the device: refused there (its ERROR comes back signed).
        errors = svc.ingest.counts.get("device_errors", 0)
        rejected = diag(board, capsys)["rejected"]
        broker.inject(topics.down(device_id), ack)
        step_until(clock, lambda: svc.ingest.counts.get("device_errors", 0) > errors,
                   "the device's refusal", show=svc.ingest.stats)
        assert svc.ingest.last_device_error[1][C.K_CODE] == C.E_REPLAYED
        assert diag(board, capsys)["rejected"] == rejected + 1
        assert stored(registry_path, device_id) == list(range(1, first + 1))

        # The board's network goes down (its Wi-Fi) while it keeps measuring and reporting.
        world.set(network=False)
        clock.advance(HOUR + 60)
        during = diag(board, capsys)
        assert during["telemetry"]["pending"] >= 1 and not during["net"]["connected"]
        svc.ingest.pending.pop(device_id, None)
        world.set(network=True)
        acked = Settled(svc.ingest, device_id)
        step_until(clock, acked, "the backlog after the network came back", step_s=20,
                   limit_s=90, show=svc.ingest.stats)
        d = diag(board, capsys)
        first = d["telemetry"]["last"]
        assert d["telemetry"]["pending"] == 0
        assert stored(registry_path, device_id) == list(range(1, first + 1))

        # The broker goes down while the meter keeps measuring and reporting.
        broker.stop()
        clock.advance(2 * HOUR)
        during = diag(board, capsys)
        assert during["telemetry"]["pending"] >= 2 and not during["net"]["connected"]
        svc.ingest.pending.pop(device_id, None)
        broker.start()
        acked = Settled(svc.ingest, device_id)
        step_until(clock, acked, "the backlog to be delivered after the restart", step_s=20,
                   limit_s=90, show=svc.ingest.stats)
        d = diag(board, capsys)
        last = d["telemetry"]["last"]
        assert last >= first + 2 and d["telemetry"]["pending"] == 0
        assert stored(registry_path, device_id) == list(range(1, last + 1))   # no gap, no dup
    finally:
        spy.close()
        stop.set()
        thread.join(5)
        broker.stop()


def test_a_command_waits_in_the_broker_until_the_device_takes_it(board, world, clock,
                                                                 fleet_home, capsys, tmp_path):
    from edgekit.fleet import command as fleet_command
    broker = EmbeddedBroker().start()
    try:
        (tmp_path / "net.json").write_text(json.dumps({"poll_s": 2}))
        assert edgekit(["provision", board.url, "--kind", "water_meter", "--site", "x",
                        "--broker", broker.url, "--net", str(tmp_path / "net.json")]) == 0
        capsys.readouterr()
        device_id = Registry(fleet_home / "registry.sqlite").list()[0]["device_id"]
        step_until(clock, lambda: diag(board, capsys)["net"]["connected"], "first connect")
        # A latching valve keeps its position through a reflash: on a tray board an earlier
        # test may have left it shut (the serial tray did, seed 108898). Open it first.
        assert edgekit(["command", board.url, "valve", "open=true", "--json"]) == 0
        capsys.readouterr()
        assert edgekit(["command", board.url, "read", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["result"]["valve"] is True
        # The board's clock stands still: its network task does not run, as in a sleep. No
        # serial command until it has run the queued one: signed later by the same operator
        # key, it would make the queued one a replay (docs/fleet.md).
        ring = fleet_command.device_keyring(Registry(fleet_home / "registry.sqlite"), device_id)
        spy = Spy(broker, device_id)
        try:
            assert edgekit(["command", "--via", "fleet", device_id, "valve", "open=false",
                            "--broker", broker.url, "--json"]) == 0
            assert json.loads(capsys.readouterr().out)["queued"] is True
            time.sleep(0.5)
            assert spy.up.empty()                           # still waiting in the broker
            step_until(clock, lambda: not spy.up.empty(), "the wake")
            msg = messages.open_body(spy.up.get(), ring)
            assert (msg.type, msg.payload[C.K_RESULT]) == (
                C.COMMAND_RESULT, {"valve": "closed", "requested": False})
        finally:
            spy.close()
        assert edgekit(["command", board.url, "read", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["result"]["valve"] is False

        # Waiting for the answer: verified with the device's key from its up-topic.
        keys = KeyStore(fleet_home / "keys")
        answer = {}

        def ask():
            with Registry(fleet_home / "registry.sqlite") as reg:
                answer["msg"] = fleet_command.send(
                    reg, device_id, "valve", {"open": True}, keys.signer(C.ROLE_OPERATOR, PASS),
                    lambda: keys.next_seq(C.ROLE_OPERATOR), broker.host, broker.port,
                    wait_s=30)
        asker = threading.Thread(target=ask, daemon=True)
        asker.start()
        step_until(clock, lambda: not asker.is_alive(), "the answer")
        msg = answer["msg"]
        assert msg.type == C.COMMAND_RESULT and msg.sender == device_id
        assert msg.payload[C.K_RESULT] == {"valve": "open", "requested": True}
    finally:
        broker.stop()
