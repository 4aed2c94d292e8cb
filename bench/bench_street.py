"""A networked street at scale: N emulated water meters provisioned with the embedded broker,
reporting over MQTT to one `edgekit fleet serve` process, on this machine.

    python bench/bench_street.py                   # 200 boards at 60x (about 3 minutes)
    EDGEKIT_BENCH_STREET=1000 python bench/bench_street.py     # the issue's 1,000 at 12x (3+ GB)

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

COUNT = int(os.environ.get("EDGEKIT_BENCH_STREET", "200"))
# The boards' VMs cost CPU in proportion to boards x speed: 200 at 60x kept a load average
# of 8 on this 2-core machine. Above 200 boards the default speed keeps that product
# (12x at 1,000: the same messages a second, from five times the connections), so the
# street is measured, not the machine's overload.
SPEED = float(os.environ.get("EDGEKIT_BENCH_STREET_SPEED",
                             60 if COUNT <= 200 else 12000 / COUNT))
BATCH = 100             # ports per `edgekit provision` call
# At least two simulated hours: each meter pushes its hourly pack once in each.
WINDOW_S = float(os.environ.get("EDGEKIT_BENCH_STREET_WINDOW", max(120, 7200 / SPEED)))
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


class BrokerProcess:
    """`edgekit fleet broker` (amqtt) in a process of its own: in this process it shared
    one interpreter lock with the emulator's supervisor of every board and the service."""

    def __init__(self, env):
        self.proc = subprocess.Popen([sys.executable, "-m", "edgekit.cli", "fleet", "broker",
                                      "--port", "0", "--json"], env=env,
                                     stdout=subprocess.PIPE, text=True)
        where = json.loads(self.proc.stdout.readline() or "{}")
        if "url" not in where:
            raise RuntimeError("edgekit fleet broker did not start (its error is above)")
        self.url, self.host, self.port = where["url"], where["host"], where["port"]

    def cpu_s(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


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


def boards_heard(db_path):
    """From the service's store: how many boards' telemetry it holds, and how much each
    (the issue's "each reporting": a board that never got through shows as missing)."""
    import sqlite3
    db = sqlite3.connect(db_path)
    try:
        rows = [n for (n,) in db.execute("SELECT COUNT(*) FROM telemetry GROUP BY device_id")]
    finally:
        db.close()
    return {"boards": len(rows), "fewest": min(rows, default=0),
            "median": statistics.median(rows) if rows else 0}


def report_errors(failed):
    errors = {}
    for dev in failed:
        error = f"{dev.get('step') or '?'}: {dev.get('error', '?')[:160]}"
        errors[error] = errors.get(error, 0) + 1
    for error, n in sorted(errors.items(), key=lambda e: -e[1])[:5]:
        print(f"  {n} failed: {error}")


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
        broker = BrokerProcess(env)
        print(f"street of {COUNT} water meters (esp32), virtual time at {SPEED:.0f}x, "
              f"report_s {REPORT_S}, keepalive {keepalive} s simulated, embedded broker "
              f"(amqtt, its own process)")
        t0 = time.monotonic()
        boards = emu.fleet(COUNT, board="esp32", kind="water_meter", speed=SPEED)
        started = time.monotonic() - t0
        print(f"started {COUNT} boards in {started:.1f} s", flush=True)
        # In batches: one `edgekit provision` per BATCH ports, 16 at once, each batch's
        # progress printed (a technician's run does the same per tray). The 1,000-board run
        # with one call for every port printed nothing for 18 minutes.
        t0 = time.monotonic()
        devices = {}
        ports = [b.url for b in boards]
        for attempt in (1, 2):
            # A second pass over the ports that failed, as a technician would run it again.
            todo = [p for p in ports if not devices.get(p, {}).get("ok")]
            for first in range(0, len(todo), BATCH):
                batch = todo[first:first + BATCH]
                report = json.loads(edgekit(env, "provision", "--ports", *batch,
                                            "--kind", "water_meter", "--site", "bench-street",
                                            "--broker", broker.url, "--net",
                                            str(tmp / "net.json"), "--config",
                                            str(tmp / "street.toml"), "--parallel", "16",
                                            # a loaded host's boards answer and boot slowly
                                            "--timeout", "10", "--json", json_report=True))
                for dev in report["devices"]:
                    devices[dev["port"]] = dev
                print(f"  pass {attempt}: provisioned "
                      f"{sum(1 for d in devices.values() if d.get('ok'))} of {COUNT} after "
                      f"{first + len(batch)} ports, {time.monotonic() - t0:.0f} s; load average "
                      f"{os.getloadavg()[0]:.1f}", flush=True)
            failed = [dev for dev in devices.values() if not dev.get("ok")]
            if attempt == 1 and failed:
                print(f"  pass 1: {len(failed)} failed; once more", flush=True)
                report_errors(failed)
            if not failed:
                break
        provisioned = time.monotonic() - t0
        ok = sum(1 for d in devices.values() if d.get("ok"))
        print(f"provisioned {ok} ({COUNT - ok} failed) in {provisioned:.1f} s "
              f"({provisioned / max(1, ok) * 1000:.0f} ms per board, 16 at once)")
        report_errors([d for d in devices.values() if not d.get("ok")])
        latency = Latency()
        watcher = observer(broker, latency)
        stop, held = threading.Event(), {}
        thread = threading.Thread(target=lambda: held.update(
            ingest=serve(tmp / "home", broker, latency, stop)), daemon=True)
        thread.start()
        time.sleep(20)                      # the street's first reports, connections made
        latency.take()
        c0, w0, b0 = os.times(), time.monotonic(), broker.cpu_s()
        time.sleep(WINDOW_S)
        published, pairs = latency.take()
        wall = time.monotonic() - w0
        c1, b1 = os.times(), broker.cpu_s()
        stop.set()
        thread.join(30)
        stats = held["ingest"].stats()
        counts, dropped = stats["counts"], stats["dropped"]
        pss = [p for p in (pss_kib(i["pid"]) for i in emu.boards()) if p]
        print(f"window {wall:.0f} s: the street published {published / wall:.1f} msg/s; the "
              f"service answered {len(pairs) / wall:.1f} msg/s "
              f"(over its whole run: accepted {counts['accepted']}, stored "
              f"{counts['records_stored']} records, dropped {sum(dropped.values())})")
        heard = boards_heard(tmp / "home" / "registry.sqlite")
        print(f"boards heard: {heard['boards']} of {COUNT} have telemetry stored (records a "
              f"board: fewest {heard['fewest']}, median {heard['median']})")
        if pairs:
            lat = sorted(pairs)
            print(f"publish -> answer through the broker: p50 {statistics.median(lat) * 1000:.0f}"
                  f" ms, p99 {lat[max(0, int(len(lat) * 0.99) - 1)] * 1000:.0f} ms "
                  f"({len(lat)} messages)")
        if pss:
            print(f"memory per board (PSS of its VM): median {statistics.median(pss) / 1024:.2f}"
                  f" MB, total {sum(pss) / 1024:.0f} MB for {len(pss)} boards")
        print(f"CPU: this process (emulator supervisor, service, observer) "
              f"{(c1.user + c1.system - c0.user - c0.system) / wall:.2f} cores, the broker "
              f"{(b1 - b0) / wall:.2f}; load average {os.getloadavg()[0]:.1f}")
        watcher.loop_stop()
        watcher.disconnect()
        emu.stop(boards)
        broker.stop()


if __name__ == "__main__":
    main()
