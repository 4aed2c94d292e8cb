"""A networked street at scale: N emulated water meters provisioned with the embedded broker,
reporting over MQTT to one `edgekit fleet serve` process, on this machine.

    python bench/bench_street.py                   # 200 boards (about 3 minutes)
    EDGEKIT_BENCH_STREET=1000 python bench/bench_street.py     # the issue's 1,000 (3+ GB)

Prints: time to start and provision the street, memory per board (PSS of each board's VM),
the messages per second the service answered (verified, stored, acked) over the measured
window against what the street published in it (the offered load, the reference in the same
run), and publish -> answer latency through the broker: a second subscriber on the up-topics
sees each message when the broker fans it out; the service's answer is timed when published;
pairs are matched by the message's bytes. No asserts.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_emu import pss_kib

from edgekit.emu import Emulator
from edgekit.fleet import topics
from edgekit.fleet.broker import EmbeddedBroker

COUNT = int(os.environ.get("EDGEKIT_BENCH_STREET", "200"))
SPEED = float(os.environ.get("EDGEKIT_BENCH_STREET_SPEED", "60"))
WINDOW_S = float(os.environ.get("EDGEKIT_BENCH_STREET_WINDOW", "120"))
REPORT_S = 300          # the meter closes an hour of data every 60 s at 60x; it pushes within 5 s
PASS = "bench-street-passphrase"


def edgekit(env, *args, timeout=1800, json_report=False):
    """stdout of an edgekit command. `json_report`: a --json command whose report says
    what failed (provision exits 1 when any device did): its report, not an exception."""
    proc = subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)
    if proc.returncode != 0 and not (json_report and proc.stdout.lstrip().startswith("{")):
        raise RuntimeError(f"edgekit {' '.join(args[:2])} exited {proc.returncode}: "
                           f"{(proc.stderr or proc.stdout)[-2000:]}")
    return proc.stdout


class Latency:
    """Publish -> answer through the broker: when an up message reaches a second subscriber
    (the observer: the broker's fan-out, the same delivery the service gets) against when the
    service has published its answer to it, paired by the message's bytes."""

    def __init__(self):
        self.seen, self.answered, self.pairs = {}, {}, []
        self.up = 0
        self.lock = threading.Lock()

    def _match(self, key, now, mine, theirs, observed):
        with self.lock:
            if observed:
                self.up += 1
            other = theirs.pop(key, None)
            if other is None:
                mine[key] = now
            else:
                self.pairs.append(abs(now - other))

    def observed(self, payload):
        self._match(bytes(payload), time.perf_counter(), self.seen, self.answered, True)

    def answered_(self, payload):
        self._match(bytes(payload), time.perf_counter(), self.answered, self.seen, False)

    def take(self):
        with self.lock:
            up, pairs = self.up, self.pairs
            self.up, self.pairs = 0, []
            return up, pairs


def observer(broker, latency):
    import paho.mqtt.client as mqtt
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-observer")
    client.username_pw_set(topics.SERVICE_USER)
    client.on_message = lambda c, u, m: latency.observed(m.payload)
    client.connect(broker.host, broker.port)
    client.subscribe(topics.UP_FILTER, 0)
    client.loop_start()
    return client


def serve(home, broker, latency, stop):
    """`fleet serve` as the CLI builds it, in a thread, its answers timed."""
    from edgekit import catalog as C
    from edgekit.fleet.ingest import Ingest
    from edgekit.fleet.service import FleetService
    from edgekit.keys.store import KeyStore
    from edgekit.registry.db import Registry
    registry = Registry(home / "registry.sqlite")
    store = KeyStore(home / "keys").require()
    ingest = Ingest(registry, store.signer(C.ROLE_OPERATOR, PASS),
                    lambda: store.next_seq(C.ROLE_OPERATOR))
    service = FleetService(ingest, broker.host, broker.port, client_id="bench-fleet")
    handle = service._on_message

    def timed(client, userdata, message):
        handle(client, userdata, message)
        latency.answered_(message.payload)
    service.client.on_message = timed
    service.run(stop)
    registry.close()
    return ingest


def main():
    with tempfile.TemporaryDirectory() as d, Emulator() as emu:
        tmp = Path(d)
        env = dict(os.environ, EDGEKIT_HOME=str(tmp / "home"), EDGEKIT_KEY_PASSPHRASE=PASS)
        edgekit(env, "keys", "init")
        (tmp / "street.toml").write_text(f"report_s = {REPORT_S}\n")
        # Keepalive in simulated seconds: at 60x a meter's default 60 s is a PINGREQ every
        # wall second, 1,000 a second for a 1,000-board street (a run at 1,000 with it did
        # not finish provisioning in 18 minutes). The longest keepalive, 3,600 s, is a ping
        # a wall minute at 60x: the broker sees the pings a real street at keepalive 60
        # would send it.
        keepalive = int(min(3600, 60 * SPEED))
        (tmp / "net.json").write_text(json.dumps({"keepalive": keepalive}))
        broker = EmbeddedBroker().start()
        print(f"street of {COUNT} water meters (esp32), virtual time at {SPEED:.0f}x, "
              f"report_s {REPORT_S}, keepalive {keepalive} s simulated, embedded broker "
              f"(amqtt)")
        t0 = time.monotonic()
        boards = emu.fleet(COUNT, board="esp32", kind="water_meter", speed=SPEED)
        started = time.monotonic() - t0
        t0 = time.monotonic()
        report = json.loads(edgekit(env, "provision", "--ports", *[b.url for b in boards],
                                    "--kind", "water_meter", "--site", "bench-street",
                                    "--broker", broker.url, "--net", str(tmp / "net.json"),
                                    "--config", str(tmp / "street.toml"), "--parallel", "16",
                                    "--json",
                                    json_report=True))
        provisioned = time.monotonic() - t0
        print(f"started {COUNT} boards in {started:.1f} s; provisioned {report['ok']} "
              f"({report['failed']} failed) in {provisioned:.1f} s "
              f"({provisioned / max(1, report['ok']) * 1000:.0f} ms per board, 16 at once)")
        errors = {}
        for d in report["devices"]:
            if not d.get("ok"):
                errors[d.get("error", "?")[:120]] = errors.get(d.get("error", "?")[:120], 0) + 1
        for error, n in sorted(errors.items(), key=lambda e: -e[1])[:5]:
            print(f"  {n} failed: {error}")
        latency = Latency()
        watcher = observer(broker, latency)
        stop, held = threading.Event(), {}
        thread = threading.Thread(target=lambda: held.update(
            ingest=serve(tmp / "home", broker, latency, stop)), daemon=True)
        thread.start()
        time.sleep(20)                      # the street's first reports, connections made
        latency.take()
        c0, w0 = os.times(), time.monotonic()
        time.sleep(WINDOW_S)
        published, pairs = latency.take()
        wall = time.monotonic() - w0
        c1 = os.times()
        stop.set()
        thread.join(30)
        stats = held["ingest"].stats()
        counts, dropped = stats["counts"], stats["dropped"]
        pss = [p for p in (pss_kib(i["pid"]) for i in emu.boards()) if p]
        print(f"window {wall:.0f} s: the street published {published / wall:.1f} msg/s; the "
              f"service answered {len(pairs) / wall:.1f} msg/s "
              f"(over its whole run: accepted {counts['accepted']}, stored "
              f"{counts['records_stored']} records, dropped {sum(dropped.values())})")
        if pairs:
            lat = sorted(pairs)
            print(f"publish -> answer through the broker: p50 {statistics.median(lat) * 1000:.0f}"
                  f" ms, p99 {lat[max(0, int(len(lat) * 0.99) - 1)] * 1000:.0f} ms "
                  f"({len(lat)} messages)")
        if pss:
            print(f"memory per board (PSS of its VM): median {statistics.median(pss) / 1024:.2f}"
                  f" MB, total {sum(pss) / 1024:.0f} MB for {len(pss)} boards")
        print(f"this process (emulator supervisor, broker, service, observer) CPU: "
              f"{(c1.user + c1.system - c0.user - c0.system) / wall:.2f} cores; "
              f"load average {os.getloadavg()[0]:.1f}")
        watcher.loop_stop()
        watcher.disconnect()
        emu.stop(boards)
        broker.stop()


if __name__ == "__main__":
    main()
