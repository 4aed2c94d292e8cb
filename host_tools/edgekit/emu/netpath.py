"""A board's network path: a TCP relay between the VM's socket and the host and port its
firmware connects to, with the latency and loss its world says (net_latency_ms, net_loss).

The VM's `socket` (boards/emu_socket.py) asks for a route when the firmware resolves a host
for a TCP connection: the supervisor opens a listener on 127.0.0.1 standing for that host
and port (once per board) and answers its port, and every connection to it is relayed to
the host and port the firmware named, nowhere else. The bytes are not looked at (TLS and
MQTT pass as they are).

The model is TCP as an application sees it, not IP packets:
- latency: every byte takes net_latency_ms to cross, in each direction (one-way: a publish
  waits a round trip, twice that, for its PUBACK). The VM's connect returns at once (the
  listener is local); the handshake's round trip is paid by its first bytes instead.
- loss: the stream crosses in segments of MSS bytes; each transmission of a segment is lost
  with probability net_loss and costs a retransmission timeout, RTO = round trip + 200 ms
  (Linux's rto_min above a steady round trip), doubled on each loss of the same segment in
  a row up to 120 s (TCP_RTO_MAX). Bytes behind a lost segment wait for it (in-order
  delivery). A segment lost 16 times in a row resets the connection when its last timeout
  ends (tcp_retries2 = 15 retransmissions); a SYN, with a 1 s first timeout, after 7
  (tcp_syn_retries = 6). Heavy loss is therefore a stalled connection, which the device's
  timeouts and keepalive, or the broker's, give up on first, as over a real network. Lost
  ACKs are not modelled (a later cumulative ACK covers them).
- time: wall time (the supervisor loop's clock). A board waiting for the network polls its
  socket (firmware/net/mqtt.py): in virtual and real time its clock runs at wall speed while
  it runs, so it sees these delays as they are; in paused time its clock stands still while
  it runs, so a network wait costs wall time and no simulated time.
- which transmissions are lost: drawn from a generator seeded from the board's seed, so a
  seeded board draws the same sequence; how the stream is cut into writes follows the
  firmware's timing, so which bytes a draw falls on may differ between runs.
"""
import asyncio
import random
import socket
from collections import deque

from edgekit.emu.fds import lift_socket

MSS = 1460              # Ethernet's 1500-byte MTU less the IPv4 and TCP headers
RTO_MIN_MS = 200.0      # Linux TCP_RTO_MIN
RTO_MAX_MS = 120000.0   # Linux TCP_RTO_MAX
RETRIES = 15            # Linux tcp_retries2: retransmissions before the connection is reset
SYN_RTO_MS = 1000.0     # Linux TCP_TIMEOUT_INIT: the SYN's first retransmission timeout
SYN_RETRIES = 6         # Linux tcp_syn_retries
_WINDOW = 64 * 1024     # bytes one direction holds before it stops reading (a TCP window)
_READ = 65536


def transmission_delay(loss, first_rto_ms, retries, rng):
    """What losses cost one segment: (ms of timeouts, transmissions lost). More than
    `retries` lost: the ms until the last timeout ends, when the connection is reset."""
    extra, rto = 0.0, first_rto_ms
    for lost in range(retries + 1):
        if loss <= 0.0 or rng.random() >= loss:
            return extra, lost
        extra += rto
        rto = min(rto * 2.0, RTO_MAX_MS)
    return extra, retries + 1


def segments(data):
    return [data[i:i + MSS] for i in range(0, len(data), MSS)]


class NetPath:
    """The relays of one board. `conditions()` gives (latency ms, loss) at this instant."""

    def __init__(self, loop, conditions, seed=None):
        self.loop = loop
        self.conditions = conditions
        self.rng = random.Random(None if seed is None else f"netpath:{seed}")
        self._routes = {}       # (host, port) -> listening socket
        self._conns = set()
        self.stats = {"connections": 0, "segments": 0, "lost": 0, "resets": 0,
                      "bytes_up": 0, "bytes_down": 0}

    def route(self, host, port):
        """The local port that stands for host:port on this board's path (opened once)."""
        key = (host, port)
        listener = self._routes.get(key)
        if listener is None:
            listener = lift_socket(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            listener.bind(("127.0.0.1", 0))
            listener.listen(8)
            listener.setblocking(False)
            self.loop.add_reader(listener.fileno(), self._accept, listener, host, port)
            self._routes[key] = listener
        return listener.getsockname()[1]

    def _accept(self, listener, host, port):
        try:
            vm_sock, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        vm_sock = lift_socket(vm_sock)
        vm_sock.setblocking(False)
        self.stats["connections"] += 1
        conn = _Connection(self, vm_sock)
        self._conns.add(conn)
        conn.start(host, port)

    def used(self):
        """True once the board has resolved a host or holds a connection: its sockets run in
        wall time, which a lease (hal_ops.lease) would let paused time outrun."""
        return bool(self._routes or self._conns)

    def in_flight(self):
        """True while the path holds bytes for a board's connection (it waits on them)."""
        return any(c.in_flight() for c in self._conns)

    def close(self):
        for listener in self._routes.values():
            try:
                self.loop.remove_reader(listener.fileno())
            except (ValueError, OSError):
                pass
            listener.close()
        self._routes.clear()
        for conn in list(self._conns):
            conn.close()

    def snapshot(self):
        latency, loss = self.conditions()
        return dict(self.stats, latency_ms=latency, loss=loss, open=len(self._conns),
                    in_flight=self.in_flight())


class _Connection:
    """One relayed connection: the VM's socket, the upstream one, a pipe each way."""

    def __init__(self, path, vm_sock):
        self.path = path
        self.loop = path.loop
        self.vm_sock = vm_sock
        self.up_sock = None
        self.pipes = []
        self.tasks = []
        self.closed = False

    def start(self, host, port):
        self.tasks.append(self.loop.create_task(self._open(host, port)))

    async def _open(self, host, port):
        path = self.path
        latency, loss = path.conditions()
        syn_ms, lost = transmission_delay(loss, SYN_RTO_MS, SYN_RETRIES, path.rng)
        path.stats["lost"] += lost
        start = self.loop.time()
        try:
            infos = await self.loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            family, kind, proto, _, addr = infos[0]
            up = lift_socket(socket.socket(family, kind, proto))
            up.setblocking(False)
            self.up_sock = up
            if lost > SYN_RETRIES:  # every SYN lost: the connect times out, the VM sees EOF
                await asyncio.sleep(syn_ms / 1000.0)
                path.stats["resets"] += 1
                raise OSError("connection timed out")
            await self.loop.sock_connect(up, addr)
        except OSError:
            self.close()
            return
        if self.closed:             # the board stopped while the host connected
            up.close()
            return
        # SYN and SYN-ACK cross (a round trip, and the timeouts of lost SYNs), then the VM's
        # first bytes (one latency more): none arrives sooner. The peer's answers come back
        # a latency after it writes them, as any later bytes.
        first = start + (syn_ms + 3.0 * latency) / 1000.0
        self.pipes = [_Pipe(self, self.vm_sock, up, first, "bytes_up"),
                      _Pipe(self, up, self.vm_sock, start, "bytes_down")]
        self.tasks += [self.loop.create_task(f()) for p in self.pipes
                       for f in (p.read, p.send)]

    def in_flight(self):
        return any(p.queue for p in self.pipes)

    def close(self):
        if self.closed:
            return
        self.closed = True
        self.path._conns.discard(self)
        current = asyncio.current_task(self.loop) if self.loop.is_running() else None
        for task in self.tasks:
            if task is not current:
                task.cancel()
        for sock in (self.vm_sock, self.up_sock):
            if sock is not None:
                sock.close()


class _Pipe:
    """One direction: what `src` sends leaves for `dst` in order, each segment at its time."""

    def __init__(self, conn, src, dst, floor, counter):
        self.conn = conn
        self.loop = conn.loop
        self.src, self.dst = src, dst
        self.last = floor           # the time the previous segment leaves: none overtakes
        self.counter = counter
        self.queue = deque()        # [time, bytes] (b"": the peer closed; None: reset)
        self.held = 0
        self._more = asyncio.Event()
        self._room = asyncio.Event()

    def _put(self, when, data):
        when = max(self.last, when)
        self.last = when
        self.queue.append((when, data))
        self.held += len(data or b"")
        self._more.set()

    async def read(self):
        path = self.conn.path
        while True:
            while self.held > _WINDOW:      # the receiver's window is full: stop reading
                self._room.clear()
                await self._room.wait()
            try:
                data = await self.loop.sock_recv(self.src, _READ)
            except OSError:
                data = b""
            now = self.loop.time()
            latency, loss = path.conditions()
            if not data:
                self._put(now + latency / 1000.0, b"")
                return
            rto = 2.0 * latency + RTO_MIN_MS
            for seg in segments(data):
                extra, lost = transmission_delay(loss, rto, RETRIES, path.rng)
                path.stats["segments"] += 1
                path.stats["lost"] += lost
                if lost > RETRIES:  # nothing behind it crosses: the connection is reset
                    self._put(now + (latency + extra) / 1000.0, None)
                    return
                self._put(now + (latency + extra) / 1000.0, seg)

    async def send(self):
        path = self.conn.path
        while True:
            while not self.queue:
                self._more.clear()
                await self._more.wait()
            when, data = self.queue[0]
            wait = when - self.loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self.queue.popleft()
            if not data:                # the peer closed, or the path gave up on a segment
                if data is None:
                    path.stats["resets"] += 1
                self.conn.close()
                return
            self.held -= len(data)
            self._room.set()
            path.stats[self.counter] += len(data)
            try:
                await self.loop.sock_sendall(self.dst, data)
            except OSError:
                self.conn.close()
                return
