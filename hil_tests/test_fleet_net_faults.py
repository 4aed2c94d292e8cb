"""A slow, lossy network path (issue 15): an emulated water meter reports over MQTT through
300 ms of one-way latency and 20% segment loss (edgekit.emu.netpath: each lost segment waits
its retransmission timeout, as over TCP), and `fleet serve` still stores every record once,
with no gap; the meter's journal empties on the service's acks."""
import socket
import threading
import time

import pytest

pytest.importorskip("amqtt", reason="amqtt (the embedded broker) is not installed: make test "
                                    "installs it")
pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed")

from edgekit.fleet.broker import EmbeddedBroker  # noqa: E402
from edgekit.keys.store import KeyStore  # noqa: E402
from fleet_rig import (HOUR, diag, provision_networked, run_service, step_until,  # noqa: E402
                       stored)
from operator_cli import fleet_home  # noqa: E402,F401 - a fixture

pytestmark = pytest.mark.hil(kind="water_meter")

QUIET_S = 5.0


class SettledOnPath:
    """fleet_rig.Settled for a slow path: the device's last ACK said nothing is left, nothing
    came from it for QUIET_S of wall time, and its path holds nothing now (no ack waiting
    out a retransmission timeout). A count of polls was too short: the ACK of an older push
    says 0 while the newest push's ack is still on its way (300 ms each way, seconds when a
    segment is lost)."""

    def __init__(self, ingest, device_id, board):
        self.ingest, self.device_id, self.board = ingest, device_id, board
        self.seen, self.since = None, time.monotonic()

    def __call__(self):
        received = self.ingest.counts["received"]
        if received != self.seen:
            self.seen, self.since = received, time.monotonic()
        return (self.ingest.pending.get(self.device_id) == 0
                and time.monotonic() - self.since >= QUIET_S
                and not self.board.handle.info()["net"]["in_flight"])


@pytest.mark.hil(sim_s=3 * HOUR)
def test_a_meter_behind_latency_and_loss_delivers_every_record_once(board, world, clock,
                                                                     fleet_home, capsys,
                                                                     tmp_path):
    broker = EmbeddedBroker().start()
    # The path is slow and lossy from the first connect: the handshake, CONNECT and
    # SUBSCRIBE cross it too.
    world.set(net_latency_ms=300, net_loss=0.2)
    registry_path, device_id = provision_networked(
        board, fleet_home, capsys, tmp_path, broker.url, {"poll_s": 2, "keepalive": 60},
        {"report_s": 1800})
    held, stop, thread = run_service(registry_path, KeyStore(fleet_home / "keys"),
                                     broker.host, broker.port)
    try:
        step_until(clock, lambda: "svc" in held and held["svc"].connected.is_set(), "service")
        svc = held["svc"]
        world.set(flow_lpm=3.0)
        clock.advance(2 * HOUR)     # hourly packs, reported every 30 min
        acked = SettledOnPath(svc.ingest, device_id, board)
        step_until(clock, acked, "the meter's journal to empty across the lossy path",
                   limit_s=180, show=svc.ingest.stats)
        d = diag(board, capsys)
        last = d["telemetry"]["last"]
        assert last >= 2 and d["telemetry"]["pending"] == 0
        assert stored(registry_path, device_id) == list(range(1, last + 1))  # no gap, no dup
        net = board.handle.info()["net"]
        # The path did delay and lose: the records crossed it, not around it.
        assert net["latency_ms"] == 300 and net["loss"] == 0.2
        assert net["connections"] >= 1 and net["lost"] > 0 and net["bytes_up"] > 0
    finally:
        stop.set()
        thread.join(5)
        broker.stop()


class BlackHole:
    """A 'broker' that accepts TCP and never answers: a path that swallows the CONNECT, or
    a broker too loaded to say CONNACK."""

    def __init__(self):
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(8)
        self.port = self.srv.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                self.conns.append(self.srv.accept()[0])
            except OSError:
                return

    def close(self):
        self.srv.close()
        for c in self.conns:
            c.close()


@pytest.mark.hil(sim_s=120)
def test_a_broker_that_never_answers_does_not_hold_the_serial_link(board, clock, fleet_home,
                                                                   capsys, tmp_path):
    # The device's connect waited up to 10 s for the CONNACK, its serial link and tasks
    # held meanwhile.
    hole = BlackHole()
    try:
        provision_networked(board, fleet_home, capsys, tmp_path,
                            f"mqtt://127.0.0.1:{hole.port}", {"poll_s": 2, "keepalive": 60})
        # The client's timeout counts the network's own time (wall time in the emulator:
        # the path is real): 10 s, and once more after a backoff.
        slowest, end = 0.0, time.monotonic() + 13
        while time.monotonic() < end:
            clock.advance(2)
            t0 = time.monotonic()
            d = diag(board, capsys)
            slowest = max(slowest, time.monotonic() - t0)
        net = d["net"]
        assert hole.conns, "the device never tried the broker"
        assert net["connects"] == 0 and net["failures"] >= 1, net   # timed out, tried again
        assert slowest < 3.0, f"a diag over the cable took {slowest:.1f} s"
    finally:
        hole.close()
