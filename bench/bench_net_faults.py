"""A water meter reporting over MQTT through a slow, lossy network path (edgekit.emu.netpath:
`net_latency_ms` one-way, `net_loss` per TCP segment, each loss a retransmission timeout):
one emulated ESP32 meter in virtual time (per-sample records every 10 s, a push every 5
simulated minutes), the embedded broker and `fleet serve`'s service in this process. For
each path, one window of simulated time; prints the service's ack round trip (its
TELEMETRY_ACK published -> the device's signed ACK of it received, wall ms, p50/p99), the
records stored in the window and what the device still held at its end, the segments the
path lost and the device's reconnects. At the end, the path cleared: every record stored
once, or the gap is printed. Figures, never asserts.

    python bench/bench_net_faults.py [--window-s 3600] [--speed 100] [--json]
"""
import argparse
import json
import logging
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from edgekit import catalog as C
from edgekit.emu import Emulator
from edgekit.fleet import netconfig
from edgekit.fleet.broker import EmbeddedBroker
from edgekit.fleet.ingest import Ingest
from edgekit.fleet.service import FleetService
from edgekit.hil.devices import HilFleet
from edgekit.hil.targets import BoardSpec, EmulatedTarget
from edgekit.protocol.session import Session
from edgekit.provision import flow
from edgekit.registry import telemetry as store
from edgekit.registry.db import Registry

PATHS = ((0, 0.0), (100, 0.0), (300, 0.0), (0, 0.1), (100, 0.1), (300, 0.1))
METER = {"privacy": "fine", "sample_s": 10, "report_s": 300}


class TimedService:
    """`fleet serve`'s service on a thread, timing each ack it publishes against the ACK the
    device answers it with."""

    def __init__(self, registry_path, fleet, broker):
        self.out, self.rtts = [], []
        self.stop = threading.Event()
        self.svc = None
        self.thread = threading.Thread(target=self._serve, args=(registry_path, fleet, broker),
                                       daemon=True)
        self.thread.start()

    def _serve(self, registry_path, fleet, broker):
        reg = Registry(registry_path)
        ingest = Ingest(reg, fleet.signer("operator"),
                        lambda: fleet.keystore.next_seq(C.ROLE_OPERATOR))
        svc = FleetService(ingest, broker.host, broker.port)
        publish, open_body = svc.client.publish, ingest.open

        def timed_publish(topic, body, **kw):
            self.out.append(time.monotonic())
            return publish(topic, body, **kw)

        def timed_open(topic, payload):
            msg, who = open_body(topic, payload)
            if msg is not None and msg.type == C.ACK and self.out:
                self.rtts.append(time.monotonic() - self.out[-1])
            return msg, who
        svc.client.publish, ingest.open = timed_publish, timed_open
        self.svc = svc
        svc.run(self.stop)
        reg.close()

    def close(self):
        self.stop.set()
        self.thread.join(5)


def provision(target, fleet, broker):
    session = Session(target.transport(), timeout=10)
    row = flow.provision(session, fleet.fleet, fleet.registry, "water_meter", "bench",
                         config=METER, net=netconfig.build(broker.url, {"poll_s": 2}))
    return session, row["device_id"]


def diag(session, fleet):
    session.signer = fleet.fleet.operator_signer
    session.next_seq = lambda: fleet.keystore.next_seq(C.ROLE_OPERATOR)
    msg = session.request(C.COMMAND, {C.K_NAME: "diag", C.K_ARGS: {}}, timeout=15,
                          expect=C.COMMAND_RESULT)
    return msg.payload[C.K_RESULT]


def stored(registry_path, device_id):
    with Registry(registry_path) as reg:
        return [r["journal_seq"] for r in store.telemetry(reg, device_id) if r["idx"] == 0]


def pct(values, p):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))] * 1000.0


def run_path(board, service, session, fleet, registry_path, device_id, latency, loss,
             window_s):
    board.set(net_latency_ms=latency, net_loss=loss)
    net0, rtt0, kept0 = board.info()["net"], len(service.rtts), len(stored(registry_path,
                                                                           device_id))
    failures0 = diag(session, fleet)["net"]["failures"]
    # A window of simulated time, not wall time: a board waiting on a slow path runs at wall
    # speed meanwhile, so a wall window would hold fewer records the slower the path.
    t0, wall0 = board.now(), time.monotonic()
    while board.now() - t0 < window_s:
        time.sleep(0.2)
    d = diag(session, fleet)
    net, rtts = board.info()["net"], service.rtts[rtt0:]
    return {"latency_ms": latency, "loss": loss, "wall_s": time.monotonic() - wall0,
            "acks": len(rtts), "p50_ms": pct(rtts, 50),
            "p99_ms": pct(rtts, 99),
            "stored": len(stored(registry_path, device_id)) - kept0,
            "pending_at_end": d["telemetry"]["pending"],
            "segments": net["segments"] - net0["segments"], "lost": net["lost"] - net0["lost"],
            "reconnects": d["net"]["failures"] - failures0}


def settle(board, session, fleet, registry_path, device_id, limit_s=120):
    """The path cleared: wait until the device holds nothing; (stored seqs, its last)."""
    board.set(net_latency_ms=0, net_loss=0)
    end = time.monotonic() + limit_s
    while True:
        d = diag(session, fleet)["telemetry"]
        if d["pending"] == 0 or time.monotonic() > end:
            return stored(registry_path, device_id), d["last"]
        time.sleep(2)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--window-s", type=float, default=3600.0,
                    help="simulated seconds per path (default 3600: twelve pushes)")
    ap.add_argument("--speed", type=float, default=100.0,
                    help="simulated seconds per wall second while the board sleeps")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-net-faults-"))
    fleet = HilFleet(tmp)
    registry_path = tmp / "registry.sqlite"
    rows = []
    with Emulator() as emu, EmbeddedBroker() as broker:
        # amqtt logs a traceback when a device PUBACKs later than its fixed 5 s (the path
        # held it): the message was delivered. Figures only.
        logging.getLogger("amqtt").setLevel(logging.CRITICAL)
        target = EmulatedTarget(emu, BoardSpec("emu:esp32:water_meter"), time_mode="virtual",
                                speed=args.speed)
        board = target.handle
        session, device_id = provision(target, fleet, broker)
        service = TimedService(registry_path, fleet, broker)
        try:
            for latency, loss in PATHS:
                rows.append(run_path(board, service, session, fleet, registry_path,
                                     device_id, latency, loss, args.window_s))
                if not args.json:
                    print(_line(rows[-1]), flush=True)
            kept, last = settle(board, session, fleet, registry_path, device_id)
        finally:
            service.close()
            target.close()
    shutil.rmtree(tmp, ignore_errors=True)
    whole = {"last": last, "stored": len(kept), "distinct": len(set(kept)),
             "gapless": kept == list(range(1, last + 1))}
    if args.json:
        print(json.dumps({"paths": rows, "end": whole, "window_s": args.window_s,
                          "speed": args.speed}, sort_keys=True))
        return 0
    print(f"path cleared: {whole['stored']} records stored ({whole['distinct']} distinct) of "
          f"the device's {last}; " + ("every one once, no gap" if whole["gapless"] else
                                      "NOT gapless"))
    return 0


def _line(r):
    ms = (lambda v: "-" if v is None else f"{v:.0f}")
    return (f"latency {r['latency_ms']:>3} ms one-way, loss {r['loss']:.1f} "
            f"({r['wall_s']:.0f} s wall): ack round trip "
            f"p50 {ms(r['p50_ms'])} ms p99 {ms(r['p99_ms'])} ms over {r['acks']} acks; "
            f"{r['stored']} records stored, {r['pending_at_end']} pending at the window's "
            f"end; {r['lost']} of {r['segments']} segments lost; {r['reconnects']} reconnects")


if __name__ == "__main__":
    sys.exit(main())
