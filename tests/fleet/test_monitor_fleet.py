"""`edgekit monitor --via fleet DEVICE` (fleet/monitor.py), through the embedded broker and a
running fleet service: it prints what the service stored for the device, as monitor prints a
port's records; with --follow (a real `edgekit` process) it prints each new record once the
service has stored it, a replay injected into the broker never, and it acknowledges nothing
itself: the device gets exactly the service's acks. It reads the PostgreSQL store as well."""
import json
import queue
import subprocess
import sys
import time

import pytest

pytest.importorskip("amqtt", reason="amqtt (the embedded broker) is not installed")
pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed")

from edgekit import catalog as C  # noqa: E402
from edgekit.cli import main as edgekit  # noqa: E402
from edgekit.fleet import topics  # noqa: E402
from edgekit.protocol import messages  # noqa: E402
from edgekit.registry.telemetry import iso  # noqa: E402
from edgekit.testing.pg_cluster import BACKENDS  # noqa: E402

from test_ingest import DEV, T0  # noqa: E402
from test_service_broker import client, fleet, wait  # noqa: E402,F401 - a fixture

LAUNCH = "import sys; from edgekit.cli import main; sys.exit(main(sys.argv[1:]))"


def publish_and_wait_ack(device, down, body):
    device.publish(topics.up(DEV), body, qos=1)
    return down.get(timeout=8)


@pytest.fixture
def device(fleet):
    broker, service, dev, ring, path = fleet
    down = queue.Queue()
    c = client(broker, DEV)
    c.received = []         # everything that reached the device on its down-topic

    def on_message(cl, u, m):
        msg = messages.open_body(m.payload, ring)
        c.received.append(msg)
        down.put(msg)
    c.on_message = on_message
    c.subscribe(topics.down(DEV), qos=1)
    time.sleep(0.2)
    yield c, down
    c.loop_stop()
    c.disconnect()


def test_follow_prints_what_the_service_stores_and_acks_nothing(fleet, device, tmp_path):
    broker, service, dev, ring, path = fleet
    c, down = device
    assert publish_and_wait_ack(c, down, dev.telemetry(1, 2)).payload == {C.K_UPTO: 2}
    mon = subprocess.Popen([sys.executable, "-c", LAUNCH, "monitor", "--via", "fleet", DEV,
                            "--registry", str(path), "--follow", "--json", "--interval", "0.1"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [json.loads(mon.stdout.readline()) for _ in range(2)]   # already stored
        assert [(x["device"], x["record"]["journal_seq"]) for x in lines] == \
            [(DEV, 1), (DEV, 2)]
        captured = dev.telemetry(3)
        assert publish_and_wait_ack(c, down, captured).payload == {C.K_UPTO: 3}
        assert json.loads(mon.stdout.readline())["record"]["journal_seq"] == 3
        broker.inject(topics.up(DEV), captured)       # a replay: dropped, never shown
        wait(lambda: service.ingest.dropped["replayed"] == 1, what="the replay refused")
        leak = dev.body(C.EVENT, {C.K_FROM: 7, C.K_NAME: "leak", C.K_ACTIVE: True,
                                  C.K_TIME: T0, C.K_LEVEL: 2})
        assert publish_and_wait_ack(c, down, leak).type == C.EVENT_FETCH
        event = json.loads(mon.stdout.readline())
        assert event["event"]["name"] == "leak" and event["event"]["active"] == 1
        assert publish_and_wait_ack(c, down, dev.telemetry(4)).payload == {C.K_UPTO: 4}
        assert json.loads(mon.stdout.readline())["record"]["journal_seq"] == 4
    finally:
        mon.kill()
        mon.wait(5)
    # Everything the device got is the service's: its 3 acks and its fetch of the event
    # journal. The monitor never reached the broker.
    assert [m.type for m in c.received] == [C.TELEMETRY_ACK] * 2 + [C.EVENT_FETCH] + \
        [C.TELEMETRY_ACK]
    assert service.ingest.counts["acks_sent"] == 3


@pytest.mark.parametrize("fleet", BACKENDS, indirect=True)
def test_without_follow_it_prints_what_is_stored_like_monitor(fleet, device, capsys):
    broker, service, dev, ring, path = fleet
    c, down = device
    publish_and_wait_ack(c, down, dev.telemetry(1, 3))
    capsys.readouterr()
    assert edgekit(["monitor", "--via", "fleet", DEV, "--registry", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and out[0].startswith(iso(T0 + 60)) and f"{DEV}  #1.0  volume" \
        in out[0] and "1001" in out[0]
    # --since: records from the third one's time on.
    assert edgekit(["monitor", "--via", "fleet", DEV, "--registry", str(path), "--since",
                    str(T0 + 180), "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["record"]["journal_seq"] for r in rows] == [3]


def test_what_monitor_via_fleet_refuses(fleet, capsys):
    path = fleet[4]
    for argv, what in [
            (["--ack"], "the fleet service acknowledges"),
            (["--interval", "0"], "--interval"),
            (["--since", "yesterday"], "--since"),
            (["--drain"], "--drain is for a port"),
    ]:
        assert edgekit(["monitor", "--via", "fleet", DEV, "--registry", str(path), *argv]) != 0
        assert what in capsys.readouterr().err
    assert edgekit(["monitor", "--via", "fleet", "wm-ffffffffffff", "--registry",
                    str(path)]) != 0
    assert "edgekit devices list" in capsys.readouterr().err
    assert edgekit(["monitor", "emu:x", "--follow"]) != 0
    assert "--via fleet" in capsys.readouterr().err
