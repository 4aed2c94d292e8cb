"""The board's network path (edgekit.emu.netpath): a TCP relay with the world's latency and
loss, transparent to what crosses it; seen from the host and from a board's own socket."""
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from conftest import raw_exec
from edgekit.emu import EmuError
from edgekit.emu import netpath


def test_loss_costs_doubling_timeouts_and_too_many_reset():
    rng = random.Random(1)
    assert netpath.transmission_delay(0.0, 800.0, netpath.RETRIES, rng) == (0.0, 0)
    # lost every time: 16 transmissions, the timeouts 800, 1600, ... capped at 120 s
    extra, lost = netpath.transmission_delay(1.0, 800.0, netpath.RETRIES, rng)
    assert lost == netpath.RETRIES + 1
    assert extra == sum(min(800.0 * 2 ** i, netpath.RTO_MAX_MS) for i in range(16))
    draws = [netpath.transmission_delay(0.2, 200.0, netpath.RETRIES, rng)[1]
             for _ in range(20000)]
    assert sum(draws) / len(draws) == pytest.approx(0.25, abs=0.02)   # p / (1 - p)
    # a seed decides the draws
    a, b = random.Random("x"), random.Random("x")
    assert [netpath.transmission_delay(0.5, 1, 3, a) for _ in range(50)] == \
        [netpath.transmission_delay(0.5, 1, 3, b) for _ in range(50)]


class _Echo:
    """A TCP echo server on a thread: what the path relays to."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn):
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                conn.sendall(data)


def _round_trips(conditions, n=5, size=100, seed=7):
    """The round trips (s, sorted) of `n` echoes of `size` bytes through a path, its stats."""
    echo = _Echo()
    loop = asyncio.new_event_loop()
    path = netpath.NetPath(loop, lambda: conditions, seed)
    threading.Thread(target=loop.run_forever, daemon=True).start()
    try:
        async def route():          # on the loop's thread, as the supervisor calls it
            return path.route("127.0.0.1", echo.port)
        port = asyncio.run_coroutine_threadsafe(route(), loop).result(5)
        times = []
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            for i in range(n):
                msg = bytes([i]) * size
                t0 = time.monotonic()
                s.sendall(msg)
                got = b""
                while len(got) < size:
                    got += s.recv(65536)
                times.append(time.monotonic() - t0)
                assert got == msg               # transparent: the bytes as sent
        return sorted(times), dict(path.stats)
    finally:
        loop.call_soon_threadsafe(path.close)
        loop.call_soon_threadsafe(loop.stop)
        echo.sock.close()


def test_latency_is_one_way_so_an_echo_takes_twice_it():
    rtts, stats = _round_trips((100.0, 0.0))
    assert 0.2 <= rtts[2] < 1.0 and stats["lost"] == 0     # upper bound: a loaded CI host
    assert stats["bytes_up"] == stats["bytes_down"] == 500 and stats["connections"] == 1


def test_a_lost_segment_arrives_after_its_timeout_in_order():
    # A large write crosses in MSS segments, every byte in order (_round_trips checks),
    # an echo with a lost segment later than a round trip by at least the first timeout.
    rtts, stats = _round_trips((20.0, 0.3), n=3, size=3 * netpath.MSS)
    assert stats["lost"] > 0 and stats["segments"] >= 2 * 3 * 3
    assert rtts[0] >= 0.04 and rtts[-1] > 0.04 + (0.04 + netpath.RTO_MIN_MS / 1000.0)


ECHO_APP = """
import socket, time
a = socket.getaddrinfo("127.0.0.1", {port})[0][-1]
s = socket.socket()
s.connect(a)
t = []
for i in range(3):
    t0 = time.ticks_ms()
    s.write(b"ping%d" % i)
    got = b""
    while len(got) < 5:
        got += s.read(5 - len(got))
    t.append(time.ticks_diff(time.ticks_ms(), t0))
s.close()
print("RTT", sorted(t)[1], got)
"""


def test_a_boards_socket_crosses_its_worlds_latency(emu):
    echo = _Echo()
    b = emu.start("esp32", bare=True, time="real")
    try:
        b.set(net_latency_ms=150)
        port = b.serial(timeout=0.2)
        try:
            out = raw_exec(port, ECHO_APP.format(port=echo.port), timeout=20)
        finally:
            port.close()
        rtt = int(out.split("RTT")[1].split()[0])
        assert 300 <= rtt < 1500, out      # one way each direction, on the board's clock
        assert "b'ping2'" in out
        net = b.info()["net"]
        assert net["connections"] == 1 and net["bytes_up"] == 15 and net["latency_ms"] == 150
        # A CSV drives them too, each row checked against the range first.
        with pytest.raises(EmuError, match="CSV line 2: net_loss=2 is out of range"):
            b.drive("t,net_loss\n5,2\n")
    finally:
        b.stop()
        echo.sock.close()


@pytest.fixture
def home():
    # A short path: the control socket's path must fit a unix socket address.
    d = tempfile.mkdtemp(prefix="ekh-", dir="/tmp")
    yield d
    if os.path.exists(os.path.join(d, "emu", "supervisor.pid")):
        _emu(d, "stop", "--all")
    shutil.rmtree(d, ignore_errors=True)


def _emu(home, *args):
    return subprocess.run([sys.executable, "-m", "edgekit.cli", "emu", *args],
                          env=dict(os.environ, EDGEKIT_HOME=home), capture_output=True,
                          text=True, timeout=60)


def test_emu_set_takes_latency_and_loss_and_refuses_bad_values_with_the_range(home):
    board = json.loads(_emu(home, "start", "--bare", "--json").stdout)["id"]
    ok = _emu(home, "set", board, "net_latency_ms=200", "net_loss=0.1")
    assert ok.returncode == 0, ok.stderr
    for value, message in (("net_loss=1.5", "net_loss=1.5 is out of range: give the fraction "
                                            "of segments lost from 0 (none) to 1 (all)"),
                           ("net_loss=-0.1", "net_loss=-0.1 is out of range"),
                           ("net_latency_ms=-5", "net_latency_ms=-5 is out of range: give a "
                                                 "one-way delay in ms from 0"),
                           ("net_latency_ms=fast", "net_latency_ms='fast': expected a number"),
                           ("net_loss=nan", "net_loss=nan is out of range")):
        bad = _emu(home, "set", board, value)
        assert bad.returncode == 2 and message in bad.stderr, (value, bad.stderr)
    # a refused value changes nothing, not even the valid ones beside it
    assert _emu(home, "set", board, "net_latency_ms=50", "net_loss=2").returncode == 2
    values = json.loads(_emu(home, "world", board, "--json").stdout)["values"]
    assert (values["net_latency_ms"], values["net_loss"]) == (200.0, 0.1)
