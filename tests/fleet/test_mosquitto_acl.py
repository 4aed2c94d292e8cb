"""SPEC 13.4 on a real Mosquitto (the Debian package; .ci/run installs it as root): with the
configuration edgekit.fleet.mosquitto writes, a device cannot publish as another device nor
read another's commands, anonymous clients and wrong passwords are refused, the device's own
MicroPython client logs in with its password, and `fleet serve` stores what a device sends."""
import queue
import socket
import subprocess
import threading
import time

import pytest

from edgekit.fleet import mosquitto

mqtt = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed")
if mosquitto.binary() is None:
    pytest.skip("mosquitto is not installed (apt-get install mosquitto; .ci/run installs it "
                "as root)", allow_module_level=True)

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from edgekit.fleet import topics  # noqa: E402
from edgekit.fleet.broker import free_port  # noqa: E402
from edgekit.fleet.ingest import Ingest  # noqa: E402
from edgekit.fleet.service import FleetService  # noqa: E402
from edgekit.registry import telemetry as store  # noqa: E402
from edgekit.registry.db import Registry  # noqa: E402
from edgekit.testing import mp  # noqa: E402

from test_ingest import DEV, OTHER, Device, Seq  # noqa: E402

USERS = {"edgekit-fleet": "service-pw", DEV: "dev-pw", OTHER: "other-pw"}


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    port = free_port()
    conf = mosquitto.write_config(tmp_path_factory.mktemp("mosq"), port, USERS)
    proc = subprocess.Popen([mosquitto.binary(), "-c", str(conf)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(5)


def client(port, user, password, clean=False):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=user or "anon",
                    clean_session=clean)
    if user:
        c.username_pw_set(user, password)
    got, acks, ready, result = queue.Queue(), [], threading.Event(), []
    c.on_message = lambda cl, u, m: got.put((m.topic, bytes(m.payload)))
    c.on_subscribe = lambda cl, u, mid, codes, p: acks.append([int(x.value) for x in codes])
    c.on_connect = lambda cl, u, f, reason, p: (result.append(not reason.is_failure),
                                                ready.set())
    c.connect("127.0.0.1", port)
    c.loop_start()
    ready.wait(3)
    return c, got, acks, result == [True]


def test_each_device_only_on_its_own_topics(broker):
    svc, svc_got, _, ok = client(broker, "edgekit-fleet", "service-pw")
    assert ok
    svc.subscribe(topics.UP_FILTER, 1)
    dev, dev_got, dev_acks, ok = client(broker, DEV, "dev-pw")
    assert ok
    dev.subscribe([(topics.down(DEV), 1), (topics.down(OTHER), 1)])
    time.sleep(0.3)
    # Mosquitto 2.0 grants a v3.1.1 subscription it may not serve and checks the ACL on each
    # delivery: what matters is that nothing for another device arrives (below).
    assert dev_acks and dev_acks[0][0] == 1
    dev.publish(topics.up(OTHER), b"as another", qos=1).wait_for_publish(3)
    dev.publish(topics.up(DEV), b"as itself", qos=1).wait_for_publish(3)
    assert svc_got.get(timeout=3) == (topics.up(DEV), b"as itself")
    svc.publish(topics.down(OTHER), b"for other", qos=1).wait_for_publish(3)
    svc.publish(topics.down(DEV), b"for dev", qos=1).wait_for_publish(3)
    assert dev_got.get(timeout=3) == (topics.down(DEV), b"for dev")
    time.sleep(0.3)
    assert svc_got.empty() and dev_got.empty()
    for user, password in ((None, None), (DEV, "wrong"), ("stranger", "x")):
        c, _, _, ok = client(broker, user, password, clean=True)
        assert not ok, user
        c.loop_stop()
    for c in (svc, dev):
        c.disconnect()
        c.loop_stop()


DEVICE_LOGIN = r'''
from mqtt import MQTTClient, MQTTException
for pw in (b"dev-pw", b"wrong"):
    c = MQTTClient(b"DEV", "127.0.0.1", PORT, user=b"DEV", password=pw, timeout=3)
    try:
        print("present", c.connect(clean_session=False))
        c.publish(b"ek/DEV/up", b"from the vm", qos=1)
        print("published")
        c.disconnect()
    except MQTTException as e:
        print("refused", e.args[0])
'''


def test_the_device_client_logs_in_with_its_password(broker):
    svc, svc_got, _, ok = client(broker, "edgekit-fleet", "service-pw")
    svc.subscribe(topics.UP_FILTER, 1)
    time.sleep(0.3)
    out = mp.run(DEVICE_LOGIN.replace("PORT", str(broker)).replace("DEV", DEV), timeout=30)
    assert "published" in out and "refused 5" in out, out      # 5: not authorised
    assert svc_got.get(timeout=3) == (topics.up(DEV), b"from the vm")
    svc.disconnect()
    svc.loop_stop()


def test_fleet_serve_stores_through_mosquitto(broker, tmp_path):
    dev = Device(DEV)
    with Registry(tmp_path / "reg.sqlite") as reg:
        reg.upsert_device(DEV, kind="water_meter", public_key=dev.pub)
    stop, held = threading.Event(), {}

    def serve():
        reg = Registry(tmp_path / "reg.sqlite")
        held["svc"] = s = FleetService(Ingest(reg, Ed25519PrivateKey.generate(), Seq()),
                                       "127.0.0.1", broker, client_id="edgekit-fleet",
                                       password="service-pw")
        s.run(stop)
        reg.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    end = time.monotonic() + 5
    while not ("svc" in held and held["svc"].connected.is_set()) and time.monotonic() < end:
        time.sleep(0.05)
    d, got, _, ok = client(broker, DEV, "dev-pw")
    d.subscribe(topics.down(DEV), 1)
    time.sleep(0.3)
    d.publish(topics.up(DEV), dev.telemetry(1, 2), qos=1)
    assert got.get(timeout=5)[0] == topics.down(DEV)            # the signed ack
    with Registry(tmp_path / "reg.sqlite") as reg:
        assert [r["journal_seq"] for r in store.telemetry(reg, DEV)] == [1, 2]
    stop.set()
    t.join(5)
    d.disconnect()
    d.loop_stop()
