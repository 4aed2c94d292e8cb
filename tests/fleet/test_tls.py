"""TLS on the network path (SPEC 13.6), through a real broker serving mqtts:// (the embedded
amqtt one always, Mosquitto where installed): the device's own MQTT client in the real
MicroPython VM (firmware/net/mqtt.py with nettls, the CA from a validated network config) and
`fleet serve`'s client connect over TLS, and a device's telemetry is stored and acknowledged.
A broker whose certificate comes from another CA, or names another host, is refused by the
device and by the service, with the reason, before anything is published or stored. Every
certificate is made here, for this run (edgekit.testing.pki)."""
import subprocess
import threading
import time

import pytest

pytest.importorskip("amqtt", reason="amqtt (the embedded broker) is not installed")
mqtt = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed")

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from edgekit.errors import EdgekitError, LinkError  # noqa: E402
from edgekit.fleet import mosquitto, netconfig  # noqa: E402
from edgekit.fleet.broker import EmbeddedBroker, free_port  # noqa: E402
from edgekit.fleet.ingest import Ingest  # noqa: E402
from edgekit.fleet.service import FleetService, parse_url  # noqa: E402
from edgekit.registry import telemetry as store  # noqa: E402
from edgekit.registry.db import Registry  # noqa: E402
from edgekit.testing import mp  # noqa: E402
from edgekit.testing.pki import CA  # noqa: E402

from test_ingest import DEV, Device, Seq  # noqa: E402

USERS = {"edgekit-fleet": "service-pw", DEV: "dev-pw"}
HOST = "localhost"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    ca, rogue = CA(folder), CA(folder, "rogue CA")
    return {"ca": ca, "good": ca.server((HOST, "127.0.0.1")),
            "rogue": rogue.server((HOST, "127.0.0.1")), "misnamed": ca.server(("broker.example",))}


class Mosquitto:
    def __init__(self, folder, cert):
        self.port = free_port()
        conf = mosquitto.write_config(folder, self.port, USERS, tls=cert)
        self.proc = subprocess.Popen([mosquitto.binary(), "-c", str(conf)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        import socket
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError("mosquitto did not start listening")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)


@pytest.fixture(params=["embedded", "mosquitto"])
def tls_broker(request, pki, tmp_path):
    """start(which certificate) -> the port of a broker serving mqtts:// with it."""
    started = []

    def start(which):
        if request.param == "mosquitto":
            if mosquitto.binary() is None:
                pytest.skip("mosquitto is not installed (apt-get install mosquitto; .ci/run "
                            "installs it as root)")
            b = Mosquitto(tmp_path / f"mosq-{which}", pki[which])
            started.append(b)
            return b.port
        cert, key = pki[which]
        b = EmbeddedBroker(tls_cert=cert, tls_key=key).start()
        started.append(b)
        return b.port
    yield start
    for b in started:
        b.stop()


DEVICE = r'''
import binascii, gc, time
import netcfg, nettls
from mqtt import MQTTClient
cfg = netcfg.validate({"broker": "BROKER", "ca": binascii.unhexlify(b"CA_HEX"),
                       "password": "dev-pw"})
host, port = netcfg.host_port(cfg["broker"])
got = []
c = MQTTClient(b"DEV", host, port, user=b"DEV", password=b"dev-pw", keepalive=30, timeout=5,
               ssl=nettls.context(cfg))
c.set_callback(lambda t, m: got.append((t, m)))
gc.collect()
free = gc.mem_free()
try:
    c.connect(clean_session=False)
except Exception as e:
    print("refused", type(e).__name__, repr(str(e)))
    raise SystemExit
print("connected heap", free - gc.mem_free())
c.subscribe(b"ek/DEV/down", 1)
c.publish(b"ek/DEV/up", binascii.unhexlify(b"BODY_HEX"), qos=1)
t = time.ticks_ms()
while not got and time.ticks_diff(time.ticks_ms(), t) < 10000:
    c.check_msg()
print("got", [(t.decode(), m[0]) for t, m in got])
c.disconnect()
'''


def run_device(pki, port, body=b"\xd2"):
    code = (DEVICE.replace("BROKER", f"mqtts://{HOST}:{port}").replace("DEV", DEV)
            .replace("CA_HEX", pki["ca"].der.hex()).replace("BODY_HEX", body.hex()))
    return mp.run(code, timeout=60)


class Service:
    """`fleet serve`'s FleetService on its own thread, connecting with TLS to `port`."""

    def __init__(self, tmp_path, pki, port):
        self.operator = Ed25519PrivateKey.generate()
        self.dev = Device(DEV)
        self.path = tmp_path / "reg.sqlite"
        with Registry(self.path) as reg:
            reg.upsert_device(DEV, kind="water_meter", public_key=self.dev.pub)
        self.broker = parse_url(f"mqtts://{HOST}:{port}", pki["ca"].cert_file)
        self.stop, self.errors, self.service = threading.Event(), [], None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        registry = Registry(self.path)
        try:
            ingest = Ingest(registry, self.operator, Seq())
            self.service = FleetService(ingest, *self.broker, username="edgekit-fleet",
                                        password="service-pw", broker=self.broker)
            self.service.run(self.stop)
        except Exception as exc:  # noqa: BLE001 — the test reads it
            self.errors.append(exc)
        finally:
            registry.close()

    def start(self):
        self.thread.start()
        end = time.monotonic() + 10
        while time.monotonic() < end and not self.errors:
            if self.service is not None and self.service.connected.is_set():
                return self
            time.sleep(0.05)
        raise AssertionError(f"the service did not connect: {self.errors}")

    def close(self):
        self.stop.set()
        self.thread.join(10)

    def stored(self):
        with Registry(self.path) as reg:
            return [r["journal_seq"] for r in store.telemetry(reg, DEV) if r["idx"] == 0]


def test_device_and_service_over_tls_telemetry_stored_and_acked(tls_broker, pki, tmp_path):
    port = tls_broker("good")
    svc = Service(tmp_path, pki, port).start()
    try:
        out = run_device(pki, port, svc.dev.telemetry(1, 3))
        end = time.monotonic() + 10
        while time.monotonic() < end and svc.stored() != [1, 2, 3]:
            time.sleep(0.05)
        counts = svc.service.ingest.counts
    finally:
        svc.close()
    assert "connected heap" in out, out
    assert f"got [('ek/{DEV}/down', 210)]" in out, out      # the signed ack (0xd2: COSE_Sign1)
    assert svc.stored() == [1, 2, 3] and counts["acks_sent"] == 1


@pytest.mark.parametrize("which, reason", [
    ("rogue", "not correctly signed by the trusted CA"),
    ("misnamed", "does not match with the expected CN"),
])
def test_a_broker_the_ca_does_not_vouch_for_is_refused_by_device_and_service(
        tls_broker, pki, tmp_path, which, reason):
    port = tls_broker(which)
    # The service: a clear error at its first connect, not a silent retry loop.
    svc = Service(tmp_path, pki, port)
    svc.thread.start()
    svc.thread.join(15)
    assert len(svc.errors) == 1 and isinstance(svc.errors[0], LinkError), svc.errors
    msg = str(svc.errors[0])
    assert "failed TLS verification" in msg and str(pki["ca"].cert_file) in msg, msg
    # The device: refused in the handshake, so nothing was published.
    out = run_device(pki, port, svc.dev.telemetry(1, 1))
    assert out.startswith("refused ValueError") and reason in out, out
    assert svc.stored() == []
    # And `command --via fleet`'s connect says the same.
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="cmd")
    svc.broker.apply(client)
    with pytest.raises(LinkError, match="failed TLS verification"):
        svc.broker.connect(client)


def test_plain_mqtt_client_cannot_talk_to_a_tls_listener(tls_broker):
    port = tls_broker("good")
    out = mp.run(f'''
from mqtt import MQTTClient
c = MQTTClient(b"x", "127.0.0.1", {port}, user=b"x", timeout=2)
try:
    c.connect()
    print("connected")
except Exception as e:
    print("refused", type(e).__name__)
''', timeout=30)
    assert out.startswith("refused"), out


def test_the_net_config_takes_a_ca_checked_and_shows_only_its_fingerprint(pki, tmp_path):
    ca = pki["ca"]
    der_file = tmp_path / "ca.der"
    der_file.write_bytes(ca.der)
    pem_net = netconfig.build(f"mqtts://{HOST}", {"password": "pw"}, ca.cert_file)
    der_net = netconfig.build(f"mqtts://{HOST}", {}, der_file)
    assert pem_net["ca"] == der_net["ca"] == ca.der
    shown = netconfig.public(pem_net)
    import hashlib
    assert shown["tls"] and shown["ca_sha256"] == hashlib.sha256(ca.der).hexdigest()
    assert ca.der not in repr(shown).encode() and "pw" not in repr(shown)
    # The device's own code takes PEM too, and stores the same DER (binascii in the VM).
    pem = ca.cert_file.read_bytes()
    out = mp.run(f'''
import netcfg
n = netcfg.validate({{"broker": "mqtts://h:8883", "ca": {pem!r}}})
print(n["ca"] == {ca.der!r}, netcfg.public(n)["ca_sha256"])
''')
    assert out.split() == ["True", shown["ca_sha256"]]
    two = tmp_path / "two.pem"
    two.write_bytes(pem + pem)
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    for broker, extra, ca_file, what in [
            (f"mqtts://{HOST}", {}, None, "needs its CA certificate"),
            (f"mqtt://{HOST}", {}, ca.cert_file, "only for an mqtts:// broker"),
            (f"mqtts://{HOST}", {}, two, "holds 2 certificates"),
            (f"mqtts://{HOST}", {}, junk, "not an X.509 certificate"),
            (f"mqtts://{HOST}", {}, tmp_path / "absent.pem", "No such file"),
            (f"mqtts://{HOST}", {"ca": "PEM text"}, None, "give it with --ca"),
            ("mqtts://", {}, ca.cert_file, "host missing")]:
        with pytest.raises(EdgekitError, match=what):
            netconfig.build(broker, extra, ca_file)
    # The device refuses framing that is not one DER certificate of at most CA_MAX bytes.
    out = mp.run('''
import netcfg
for ca in (b"\\x30\\x82\\x00\\x10" + b"x" * 15, b"\\x30\\x82\\x09\\x00" + b"x" * 0x900, "text",
           b"-----BEGIN CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----"):
    try:
        netcfg.validate({"broker": "mqtts://h", "ca": ca})
        print("taken")
    except ValueError as e:
        print("refused")
''')
    assert out.split() == ["refused"] * 4, out


def test_host_side_urls_take_mqtts_and_a_ca(pki):
    a = parse_url(f"mqtts://{HOST}", pki["ca"].cert_file)
    assert (a.tls, tuple(a)) == (True, (HOST, 8883))
    assert tuple(parse_url("mqtt://h")) == ("h", 1883)
    with pytest.raises(EdgekitError, match="--ca is for a TLS broker"):
        parse_url("mqtt://h", pki["ca"].cert_file)
    with pytest.raises(EdgekitError, match="mqtts://HOST"):
        parse_url("http://h")
