"""Scale out (issue 15): three `edgekit fleet serve` processes share the load through a
Mosquitto shared subscription ($share/edgekit/ek/+/up) on one registry; one is killed (-9)
mid-load. Simulated devices keep pushing their unacknowledged records (as the firmware does,
from the first unacknowledged one) until a signed ack covers them: at the end every record
of every device is stored exactly once and every device's journal is empty. Run on a SQLite
registry and on the PostgreSQL store (filled by `fleet init-store` from the SQLite registry)."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from edgekit.fleet import mosquitto

mqtt = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed")
if mosquitto.binary() is None:
    pytest.skip("mosquitto is not installed (apt-get install mosquitto; .ci/run installs it "
                "as root)", allow_module_level=True)

from edgekit import catalog as C  # noqa: E402
from edgekit.cli import main as edgekit  # noqa: E402
from edgekit.fleet import topics  # noqa: E402
from edgekit.fleet.broker import free_port  # noqa: E402
from edgekit.keys.store import KeyStore  # noqa: E402
from edgekit.protocol import messages  # noqa: E402
from edgekit.registry.backends import open_registry  # noqa: E402
from edgekit.registry.db import Registry  # noqa: E402
from edgekit.testing.pg_cluster import BACKENDS  # noqa: E402

from test_ingest import Device  # noqa: E402

PASS = "operator test passphrase"
WORKERS = [f"edgekit-fleet-{i}" for i in (1, 2, 3)]
N_DEVICES, RECORDS = 8, 12


class Meter(Device):
    """A device's journal and push loop: records 1..made, acked up to `acked`; pushes
    everything unacknowledged (at most 4 records) every `period` until acked."""

    def __init__(self, device_id, ring):
        super().__init__(device_id)
        self.ring, self.made, self.acked, self.pushes = ring, 0, 0, 0
        self.lock = threading.Lock()

    def on_message(self, client, userdata, m):
        try:
            msg = messages.open_body(bytes(m.payload), self.ring)
        except Exception:
            return
        if msg.type == C.TELEMETRY_ACK:
            with self.lock:
                self.acked = max(self.acked, min(msg.payload[C.K_UPTO], self.made))

    def push(self, client):
        with self.lock:
            first, last = self.acked + 1, min(self.made, self.acked + 4)
            if first > last:
                return
            body = self.telemetry(first, last - first + 1, more=last < self.made)
        client.publish(topics.up(self.id), body, qos=1)
        self.pushes += 1


def start_worker(env, port, user, where):
    return subprocess.Popen(
        [sys.executable, "-m", "edgekit.cli", "fleet", "serve", "--broker",
         f"mqtt://127.0.0.1:{port}", "--group", "edgekit", "--username", user, "--client-id",
         user, "--registry", where, "--json"], env=dict(env, EDGEKIT_MQTT_PASSWORD="worker-pw"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_three_workers_one_killed_nothing_lost_nothing_twice(tmp_path, monkeypatch, backend,
                                                             make_store, capsys):
    monkeypatch.setenv("EDGEKIT_HOME", str(tmp_path))
    monkeypatch.setenv("EDGEKIT_KEY_PASSPHRASE", PASS)
    assert edgekit(["keys", "init"]) == 0
    keys = KeyStore(tmp_path / "keys")
    ring = messages.Keyring()
    ring.add(keys.signer(C.ROLE_OPERATOR, PASS).public_key_bytes, C.ROLE_OPERATOR)
    meters = [Meter(f"wm-{i:012x}", ring) for i in range(N_DEVICES)]
    with Registry(tmp_path / "registry.sqlite") as reg:
        for m in meters:
            reg.upsert_device(m.id, kind="water_meter", public_key=m.pub)
    where = str(tmp_path / "registry.sqlite")
    if backend == "postgresql":
        where = make_store(backend)
        assert edgekit(["fleet", "init-store", where, "--json"]) == 0
        assert '"added": 8' in capsys.readouterr().out
    users = dict({w: "worker-pw" for w in WORKERS}, **{m.id: "pw" for m in meters})
    port = free_port()
    conf = mosquitto.write_config(tmp_path / "mosq", port, users, service_users=WORKERS)
    broker = subprocess.Popen([mosquitto.binary(), "-c", str(conf)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    workers, clients = [], []
    try:
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        env = dict(os.environ)
        workers = [start_worker(env, port, w, where) for w in WORKERS]
        for m in meters:
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=m.id)
            c.username_pw_set(m.id, "pw")
            c.on_message = m.on_message
            c.connect("127.0.0.1", port)
            c.loop_start()
            c.subscribe(topics.down(m.id), 1)
            clients.append(c)
        time.sleep(1.5)                 # the workers start (a Python process each)
        for step in range(RECORDS):
            for m in meters:
                m.made += 1
            if step == RECORDS // 2:
                workers[0].send_signal(signal.SIGKILL)     # mid-load, no goodbye
            for m, c in zip(meters, clients):
                m.push(c)
            time.sleep(0.15)
        end = time.monotonic() + 30
        while time.monotonic() < end and any(m.acked < m.made for m in meters):
            for m, c in zip(meters, clients):
                m.push(c)               # the device's retry of what is not acked yet
            time.sleep(0.3)
        assert [m.acked for m in meters] == [RECORDS] * N_DEVICES
        with open_registry(where) as reg:
            rows = reg._db.execute("SELECT device_id, journal_seq, COUNT(*) AS n FROM telemetry "
                                   "GROUP BY device_id, journal_seq").fetchall()
        assert sorted((r["device_id"], r["journal_seq"]) for r in rows) == sorted(
            (m.id, s) for m in meters for s in range(1, RECORDS + 1))
        assert all(r["n"] == 1 for r in rows)         # one row per record (one per pack here)
    finally:
        for c in clients:
            c.disconnect()
            c.loop_stop()
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        outs = [w.communicate(timeout=15) for w in workers]
        broker.terminate()
        broker.wait(5)
    # The two survivors each took a share of the load, not all of it (a shared subscription
    # gives each message to one worker).
    import json
    stats = [json.loads(o) for o, _ in outs[1:]]
    published = sum(m.pushes for m in meters)
    assert all(0 < s["counts"]["received"] < 0.8 * published for s in stats), \
        (published, stats, [e for _, e in outs])
