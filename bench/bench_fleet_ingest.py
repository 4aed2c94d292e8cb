"""Fleet service ingest (issue 15): verified-and-stored telemetry messages per second on one
core (edgekit.fleet.ingest: open with the device key, persisted replay check, one SQLite
transaction, signed ack), against a bare verify loop (messages.open_body alone) on the same
bodies: the ratio says what storing and acking cost on top of the signature check. The same
ingest into the fleet's PostgreSQL store (a throwaway local server with fsync on,
edgekit.testing.pg_cluster; skipped, saying why, without PostgreSQL or psycopg). And
through the embedded broker (amqtt + paho, one process): end-to-end messages/s and the
publish-to-ack latency p50/p99 seen by 20 devices. Figures, never asserts."""
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "host_tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "fleet"))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from edgekit import catalog as C  # noqa: E402
from edgekit.fleet import topics  # noqa: E402
from edgekit.fleet.ingest import Ingest  # noqa: E402
from edgekit.protocol import messages  # noqa: E402
from edgekit.registry.backends import open_registry  # noqa: E402
from edgekit.registry.db import Registry  # noqa: E402
from edgekit.registry.postgres import is_url  # noqa: E402
from edgekit.testing import pg_cluster  # noqa: E402
from test_ingest import Device, Seq  # noqa: E402

N_DEVICES, PER_DEVICE = 20, 50


def bodies(devices):
    out = []
    for k in range(PER_DEVICE):
        for d in devices:
            out.append((topics.up(d.id), d.telemetry(k * 4 + 1, 4)))   # 4 hourly packs each
    return out


def setup(where):
    """`where`: a folder (a SQLite registry in it) or a postgresql:// URL."""
    devices = [Device(f"wm-{i:012x}") for i in range(N_DEVICES)]
    reg = open_registry(where if is_url(where) else Path(where) / "reg.sqlite", migrate=True)
    for d in devices:
        reg.upsert_device(d.id, kind="water_meter", public_key=d.pub)
    return devices, reg


def ingest_rate(where):
    devices, reg = setup(where)
    msgs = bodies(devices)
    rings = {}
    for d in devices:
        rings[d.id] = messages.Keyring()
        rings[d.id].add(d.pub, C.ROLE_DEVICE)
    t = time.perf_counter()
    for topic, body in msgs:
        messages.open_body(body, rings[topics.device_of_up(topic)])
    bare = len(msgs) / (time.perf_counter() - t)
    ingest = Ingest(reg, Ed25519PrivateKey.generate(), Seq())
    t = time.perf_counter()
    for topic, body in msgs:
        ingest.handle(topic, body)
    full = len(msgs) / (time.perf_counter() - t)
    assert ingest.counts["acks_sent"] == len(msgs)
    reg.close()
    return len(msgs), bare, full


def broker_run(folder):
    import paho.mqtt.client as mqtt

    from edgekit.fleet.broker import EmbeddedBroker
    from edgekit.fleet.service import FleetService
    devices, reg = setup(folder)
    reg.close()
    broker = EmbeddedBroker().start()
    stop, held = threading.Event(), {}

    def serve():
        r = Registry(Path(folder) / "reg.sqlite")
        held["svc"] = s = FleetService(Ingest(r, Ed25519PrivateKey.generate(), Seq()),
                                       broker.host, broker.port)
        s.run(stop)
        r.close()
    threading.Thread(target=serve, daemon=True).start()
    while "svc" not in held or not held["svc"].connected.is_set():
        time.sleep(0.05)
    sent, lat, done = {}, [], threading.Event()
    clients = []
    for d in devices:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=d.id)
        c.username_pw_set(d.id)

        def on_message(cl, u, m, dev=d.id):
            t0 = sent.pop(dev, None)
            if t0 is not None:
                lat.append(time.perf_counter() - t0)
            if len(lat) == len(devices) * 10:
                done.set()
        c.on_message = on_message
        c.connect(broker.host, broker.port)
        c.loop_start()
        c.subscribe(topics.down(d.id), 1)
        clients.append((c, d))
    time.sleep(0.5)
    t = time.perf_counter()
    for k in range(10):                 # 10 rounds: every device publishes, awaits its ack
        for c, d in clients:
            sent[d.id] = time.perf_counter()
            c.publish(topics.up(d.id), d.telemetry(k * 4 + 1, 4), qos=1)
        end = time.monotonic() + 10
        while sent and time.monotonic() < end:
            time.sleep(0.001)
    elapsed = time.perf_counter() - t
    for c, _ in clients:
        c.disconnect()
        c.loop_stop()
    stop.set()
    broker.stop()
    lat.sort()
    return len(lat), len(lat) / elapsed, statistics.median(lat), lat[int(len(lat) * 0.99) - 1]


def pg_rate():
    why = pg_cluster.unavailable()
    try:
        import psycopg  # noqa: F401
    except ImportError:
        why = "psycopg is not installed (pip install 'psycopg[binary]')"
    if why:
        print(f"ingest into PostgreSQL: skipped ({why})")
        return
    with pg_cluster.Cluster(fsync=True) as server:
        n, bare, full = ingest_rate(server.database())
    # Two transactions per message as on SQLite (the replay counter, then the records), each
    # a few round trips to the server and a WAL flush at commit.
    print(f"ingest into PostgreSQL, one worker (a local server, fsync on): {full:.0f} "
          f"telemetry messages/s verified+stored+acked vs {bare:.0f}/s bare verify: ratio "
          f"{full / bare:.2f} ({n} messages)")


def main():
    with tempfile.TemporaryDirectory() as folder:
        n, bare, full = ingest_rate(folder)
    print(f"ingest, one core: {full:.0f} telemetry messages/s verified+stored+acked "
          f"(4 packs each) vs {bare:.0f}/s bare verify: ratio {full / bare:.2f} ({n} messages)")
    pg_rate()
    try:
        import amqtt  # noqa: F401
    except ImportError:
        print("through the broker: skipped (amqtt is not installed)")
        return
    with tempfile.TemporaryDirectory() as folder:
        n, rate, p50, p99 = broker_run(folder)
    print(f"through the embedded broker, {N_DEVICES} devices, {n} messages: {rate:.0f} msg/s "
          f"stored and acked; publish->ack latency p50 {p50 * 1000:.1f} ms, "
          f"p99 {p99 * 1000:.1f} ms (one process: broker, service and devices share the GIL)")


if __name__ == "__main__":
    main()
