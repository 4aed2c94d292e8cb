"""`fleet serve` through a real broker (the embedded amqtt one): a device's telemetry crosses
the broker, is stored and acknowledged on its down-topic; a forged and a replayed message
injected straight into the broker are refused and counted; a broker restart loses nothing;
an alarm makes a log line and reaches the webhook. The first test runs on the PostgreSQL store
as well (tests/fleet/conftest.py)."""
import http.server
import json
import queue
import threading
import time

import pytest

pytest.importorskip("amqtt", reason="amqtt (the embedded broker) is not installed: make test "
                                    "installs it")
mqtt = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed")

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from edgekit import catalog as C  # noqa: E402
from edgekit.fleet import topics  # noqa: E402
from edgekit.fleet.broker import EmbeddedBroker  # noqa: E402
from edgekit.fleet.ingest import Ingest  # noqa: E402
from edgekit.fleet.service import AlarmSink, FleetService  # noqa: E402
from edgekit.protocol import cose, messages  # noqa: E402
from edgekit.registry import telemetry as store  # noqa: E402
from edgekit.registry.backends import open_registry  # noqa: E402
from edgekit.registry.db import Registry  # noqa: E402
from edgekit.testing.pg_cluster import BACKENDS  # noqa: E402

from test_ingest import DEV, Device, Seq  # noqa: E402


class Webhook(http.server.BaseHTTPRequestHandler):
    got = queue.Queue()

    def do_POST(self):
        Webhook.got.put(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def client(broker, client_id, clean=False):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
    c.username_pw_set(client_id)        # SPEC 13.4: a device's username is its id
    c.reconnect_delay_set(0.2, 1)
    c.connect(broker.host, broker.port, keepalive=10)
    c.loop_start()
    return c


def wait(pred, timeout=8.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def fleet(make_store, request):
    """A service on the embedded broker, storing into a SQLite registry, or the backend the
    test names (parametrize "fleet" indirectly)."""
    operator = Ed25519PrivateKey.generate()
    dev = Device(DEV)
    where = make_store(getattr(request, "param", "sqlite"))
    with open_registry(where, migrate=True) as reg:
        reg.upsert_device(DEV, kind="water_meter", public_key=dev.pub)
    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    broker = EmbeddedBroker().start()
    stop, held = threading.Event(), {}

    def serve():
        registry = open_registry(where)    # the service thread's own connection
        ingest = Ingest(registry, operator, Seq(), on_alarm=AlarmSink(
            f"http://127.0.0.1:{hook.server_port}/alarm"))
        held["service"] = service = FleetService(ingest, broker.host, broker.port,
                                                 client_id="fleet-test")
        service.client.reconnect_delay_set(0.2, 1)
        service.run(stop)
        registry.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    wait(lambda: "service" in held and held["service"].connected.is_set(), what="service")
    ring = messages.Keyring()
    ring.add(cose.as_signer(operator).public_key_bytes, C.ROLE_OPERATOR)
    yield broker, held["service"], dev, ring, where
    stop.set()
    thread.join(5)
    broker.stop()
    hook.shutdown()


def stored(where):
    with open_registry(where) as reg:
        return [r["journal_seq"] for r in store.telemetry(reg, DEV)]


@pytest.mark.parametrize("fleet", BACKENDS, indirect=True)
def test_telemetry_crosses_the_broker_is_stored_and_acked(fleet, capsys):
    broker, service, dev, ring, path = fleet
    down = queue.Queue()
    device = client(broker, DEV)
    device.on_message = lambda c, u, m: down.put(messages.open_body(m.payload, ring))
    device.subscribe(topics.down(DEV), qos=1)
    time.sleep(0.2)
    device.publish(topics.up(DEV), dev.telemetry(1, 3), qos=1)
    ack = down.get(timeout=8)
    assert (ack.type, ack.payload) == (C.TELEMETRY_ACK, {C.K_UPTO: 3})
    assert stored(path) == [1, 2, 3]

    # Injected straight into the broker (past its ACL): a forgery and a replay.
    captured = dev.telemetry(4)
    broker.inject(topics.up(DEV), dev.body(C.TELEMETRY, {C.K_RECORDS: [[4, []]]},
                                           key=Ed25519PrivateKey.generate()))
    device.publish(topics.up(DEV), captured, qos=1)
    assert down.get(timeout=8).payload == {C.K_UPTO: 4}
    broker.inject(topics.up(DEV), captured)
    wait(lambda: service.ingest.dropped["replayed"] == 1
         and service.ingest.dropped["unknown_key"] == 1, what="the refusals")
    assert stored(path) == [1, 2, 3, 4] and down.empty()

    # The broker goes away and comes back (a restart: every session is gone).
    broker.stop()
    wait(lambda: not service.connected.is_set(), what="service to see the outage")
    broker.start()
    wait(lambda: service.connected.is_set(), what="service to reconnect")
    wait(lambda: device.is_connected(), what="device to reconnect")
    device.subscribe(topics.down(DEV), qos=1)   # the restarted broker forgot the session
    time.sleep(0.2)
    device.publish(topics.up(DEV), dev.telemetry(4, 3), qos=1)   # 4 again: its ack was seen
    assert down.get(timeout=8).payload == {C.K_UPTO: 6}
    assert stored(path) == [1, 2, 3, 4, 5, 6]
    assert service.ingest.counts["acks_sent"] == 3
    device.loop_stop()
    device.disconnect()


def test_the_embedded_broker_keeps_each_device_on_its_own_topics(fleet):
    broker, service, dev, ring, path = fleet
    other = "wm-222222222222"
    seen = queue.Queue()
    device = client(broker, DEV)
    device.on_message = lambda c, u, m: seen.put(m.topic)
    granted = []
    device.on_subscribe = lambda c, u, mid, codes, p: granted.append([int(x.value) for x in codes])
    device.subscribe([(topics.down(other), 1), (topics.down(DEV), 1), ("ek/+/down", 1)])
    wait(lambda: granted, what="SUBACK")
    assert granted[0][0] >= 0x80 and granted[0][1] == 1 and granted[0][2] >= 0x80
    # Publishing as another device: the broker drops it, the service never sees it.
    before = service.ingest.counts["received"]
    device.publish(topics.up(other), dev.telemetry(1), qos=1).wait_for_publish(3)
    device.publish(topics.up(DEV), dev.telemetry(1), qos=1).wait_for_publish(3)
    wait(lambda: service.ingest.counts["received"] == before + 1, what="the own-topic message")
    time.sleep(0.3)
    assert service.ingest.counts["received"] == before + 1
    # A client without a name, or one taking another device's id as client id, is refused.
    for user, cid in ((None, "anon"), (other, DEV)):
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid)
        if user:
            c.username_pw_set(user)
        with pytest.raises(Exception):
            c.connect(broker.host, broker.port)
            rc = c.loop(timeout=2)
            assert c.is_connected(), rc
        c.loop_stop()
    device.loop_stop()
    device.disconnect()


def test_an_alarm_is_logged_posted_and_fetched(fleet, capsys):
    broker, service, dev, ring, path = fleet
    down = queue.Queue()
    device = client(broker, DEV)
    device.on_message = lambda c, u, m: down.put(messages.open_body(m.payload, ring))
    device.subscribe(topics.down(DEV), qos=1)
    time.sleep(0.2)
    leak = {C.K_FROM: 1, C.K_NAME: "leak", C.K_ACTIVE: True, C.K_TIME: 1796295600}
    device.publish(topics.up(DEV), dev.body(C.EVENT, leak), qos=1)
    assert down.get(timeout=8).type == C.EVENT_FETCH
    posted = Webhook.got.get(timeout=8)
    assert (posted["device"], posted["alarm"], posted["active"]) == (DEV, "leak", True)
    assert f"ALARM SET {DEV} leak journal #1" in capsys.readouterr().err
    device.loop_stop()
    device.disconnect()


def test_cli_serve_stores_with_the_operator_key_and_prints_counts(tmp_path, monkeypatch, capsys):
    from edgekit.cli import main
    monkeypatch.setenv("EDGEKIT_HOME", str(tmp_path))
    monkeypatch.setenv("EDGEKIT_KEY_PASSPHRASE", "operator test passphrase")
    assert main(["keys", "init"]) == 0
    dev = Device(DEV)
    with Registry(tmp_path / "registry.sqlite") as reg:
        reg.upsert_device(DEV, kind="water_meter", public_key=dev.pub)
    capsys.readouterr()
    with EmbeddedBroker() as broker:
        # The service's persistent session exists before it runs (as after an earlier run):
        # what devices publish meanwhile is queued for it, however slowly it starts.
        first = client(broker, "edgekit-fleet")
        first.subscribe(topics.UP_FILTER, qos=1)
        time.sleep(0.3)
        first.disconnect()
        first.loop_stop()

        def device_side():
            c = client(broker, DEV)
            c.publish(topics.up(DEV), dev.telemetry(1, 2), qos=1).wait_for_publish(3)
            # The signature's last byte flipped (set to 0 it was unchanged 1 time in 256, and
            # the "forged" message was stored and acked: CI saw acks_sent 2).
            body = dev.telemetry(1, 2, more=False)
            c.publish(topics.up(DEV), body[:-1] + bytes([body[-1] ^ 0xFF]), qos=1)
            time.sleep(0.3)
            c.loop_stop()
        threading.Thread(target=device_side, daemon=True).start()
        assert main(["fleet", "serve", "--broker", broker.url, "--duration", "2.5",
                     "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["counts"]["records_stored"] == 2 and stats["counts"]["acks_sent"] == 1
    assert stats["dropped"]["bad_signature"] == 1
    assert stored(tmp_path / "registry.sqlite") == [1, 2]
