# MQTT 3.1.1 client with the API of micropython-lib's umqtt.simple (MQTTClient: connect,
# disconnect, ping, publish, subscribe, set_callback, set_last_will, wait_msg, check_msg),
# which netlink prefers to the board image's umqtt.simple. Differences: every length from the
# broker is bounded (max_packet) before anything is allocated, a malformed packet closes the
# connection with OSError instead of an assert, and no wait is longer than `timeout` seconds.
#
# Given `rxbuf` (a bytearray the caller allocates once, at link set-up), a PUBLISH payload is
# read into it and the callback gets a memoryview of it instead of a new bytes object: the
# view is lent until release() (what the callback keeps must be copied or released), and a
# message arriving while it is lent gets its own bytes, as without rxbuf. A payload larger
# than rxbuf is read off the socket in small pieces and discarded, never allocated, and
# on_refused(topic, size) says so. Why: after a power cut a fragmented heap had 22 KB free
# and no 1 KB block for an incoming body (umqtt.simple allocates one per message).
#
# The socket is non-blocking once connected and a wait for the broker polls it: the board
# stays busy rather than asleep in the kernel for the round trip (the emulator takes a board
# asleep in the kernel for idle and moves its clock on, and a watchdog would fire in the
# middle of a publish).
import errno
import select
import socket
import struct
import time

_CONNECT = const(0x10)
_CONNACK = const(0x20)
_PUBLISH = const(0x30)
_PUBACK = const(0x40)
_SUBSCRIBE = const(0x82)
_SUBACK = const(0x90)
_PINGREQ = b"\xc0\x00"
_PINGRESP = const(0xD0)
_DISCONNECT = b"\xe0\x00"
_TCP = const(1)             # begin_connect's steps: the TCP connect under way ...
# _CONNACK (above) doubles as the step waiting for the broker's CONNACK
_SCRATCH = const(64)        # small fields, and the pieces an oversized payload is drained in


class MQTTException(Exception):
    pass


class MQTTClient:
    def __init__(self, client_id, server, port=0, user=None, password=None, keepalive=0,
                 ssl=None, max_packet=4096 + 256, timeout=10):
        self.client_id = client_id
        self.server = server
        self.port = port or (8883 if ssl else 1883)
        self.user = user
        self.pswd = password
        self.keepalive = keepalive
        self.ssl = ssl
        self.max_packet = max_packet
        self.timeout = timeout
        self.sock = None
        self.pid = 0
        self.cb = None
        self.lw_topic = None
        self.lw_msg = None
        self.lw_qos = 0
        self.lw_retain = False
        self._hdr = bytearray(5)
        self._scratch = bytearray(_SCRATCH)
        self.rxbuf = None       # set_rxbuf(): PUBLISH payloads land there, lent to the callback
        self.lent = False
        self.on_refused = None  # f(topic, size): a payload larger than rxbuf was discarded
        self._step = 0          # begin_connect's progress: _TCP, _CONNACK, 0 (none/done)
        self._clean = True
        self._deadline = 0
        self._poller = None     # the TCP connect's, while it is under way

    # -- wire helpers -------------------------------------------------------------------
    def _write(self, data):
        mv = memoryview(data)
        deadline = time.ticks_add(time.ticks_ms(), self.timeout * 1000)
        while mv:
            n = self.sock.write(mv)
            if not n:           # send buffer full: poll again until the timeout
                if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
                    raise OSError(110)
                continue
            mv = mv[n:]

    def _read(self, n):
        out = b""
        deadline = time.ticks_add(time.ticks_ms(), self.timeout * 1000)
        while len(out) < n:
            chunk = self.sock.read(n - len(out))
            if chunk is None:
                if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
                    raise OSError(110)      # ETIMEDOUT: a packet that never finishes
                continue
            if not chunk:
                raise OSError(-1)   # the broker closed the connection
            if not out and len(chunk) == n:
                return chunk        # the usual case: no second copy of a 1 KB body
            out += chunk
        return out

    def _readinto(self, buf, n):
        """Fill buf[:n] from the socket: nothing of n's size allocated (a view only when a
        read came in parts)."""
        deadline = time.ticks_add(time.ticks_ms(), self.timeout * 1000)
        got = 0
        while got < n:
            k = self.sock.readinto(memoryview(buf)[got:] if got else buf, n - got)
            if k is None:
                if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
                    raise OSError(110)
                continue
            if not k:
                raise OSError(-1)
            got += k

    def _u8(self):
        self._readinto(self._scratch, 1)
        return self._scratch[0]

    def _u16(self):
        s = self._scratch
        self._readinto(s, 2)
        return s[0] << 8 | s[1]

    def _drain(self, n):
        while n:
            k = n if n < _SCRATCH else _SCRATCH
            self._readinto(self._scratch, k)
            n -= k

    def _send_str(self, s):
        self._write(struct.pack("!H", len(s)))
        self._write(s)

    def _recv_len(self):
        n = 0
        sh = 0
        for _ in range(4):
            b = self._u8()
            n |= (b & 0x7F) << sh
            if not b & 0x80:
                if n > self.max_packet:
                    raise OSError(-2)   # larger than anything we accept: hostile or broken
                return n
            sh += 7
        raise OSError(-2)           # a 5th length byte: malformed (MQTT 3.1.1 2.2.3)

    def _head(self, op, n):
        h = self._hdr
        h[0] = op
        i = 1
        while n > 0x7F:
            h[i] = (n & 0x7F) | 0x80
            n >>= 7
            i += 1
        h[i] = n
        self._write(memoryview(h)[:i + 1])

    def _next_pid(self):
        self.pid = self.pid % 65535 + 1
        return self.pid

    # -- the receive buffer (not in umqtt.simple) ------------------------------------------
    def set_rxbuf(self, buf):
        """Read PUBLISH payloads of up to len(buf) bytes into `buf` (preallocated once by the
        caller); larger ones are discarded unread into memory and reported to on_refused."""
        self.rxbuf = buf
        self.lent = False

    def release(self):
        """The callback's view of rxbuf is no longer used: the next payload may go there."""
        self.lent = False

    # -- umqtt.simple API -----------------------------------------------------------------
    def set_callback(self, f):
        self.cb = f

    def set_last_will(self, topic, msg, retain=False, qos=0):
        if not 0 <= qos <= 2 or not topic:
            raise ValueError("last will needs a topic and a qos of 0..2")
        self.lw_topic, self.lw_msg, self.lw_qos, self.lw_retain = topic, msg, qos, retain

    def connect(self, clean_session=True, timeout=None):
        """umqtt.simple's connect: returns once the broker accepted (its session-present
        flag), or raises. Waits up to `timeout`; begin_connect/connect_step never wait."""
        self.begin_connect(clean_session, timeout)
        while True:
            present = self.connect_step()
            if present is not None:
                return present

    def begin_connect(self, clean_session=True, timeout=None):
        """Start a connection without waiting for it (not in umqtt.simple): a device on a
        cable goes on answering it while a broker that takes its time is reached. The TCP
        connect is non-blocking; connect_step() does the rest, one step a call."""
        addr = socket.getaddrinfo(self.server, self.port)[0][-1]
        self.close()
        self._clean = clean_session
        self._deadline = time.ticks_add(time.ticks_ms(),
                                        (self.timeout if timeout is None else timeout) * 1000)
        self._step = _TCP
        self._poller = None
        self.sock = socket.socket()
        self.sock.setblocking(False)
        try:
            self.sock.connect(addr)
        except OSError as e:
            if e.args[0] != errno.EINPROGRESS and e.args[0] != errno.EAGAIN:
                self.close()
                raise

    def connect_step(self):
        """One step of a connection begun by begin_connect, without waiting: None while it
        goes on, the session-present flag once the broker accepted; OSError (ETIMEDOUT past
        the timeout, the socket's own error) or MQTTException (refused) when it failed."""
        try:
            if time.ticks_diff(self._deadline, time.ticks_ms()) <= 0:
                raise OSError(110)
            if self._step == _TCP:
                if not self._writable():
                    return None
                if self.ssl:
                    # The TLS handshake is the one wait left (up to the timeout): the
                    # ports' ssl has no handshake in steps. The broker answered TCP.
                    self.sock.settimeout(self.timeout)
                    self.sock = self.ssl.wrap_socket(self.sock, server_hostname=self.server)
                    self.sock.setblocking(False)
                self._send_connect()
                self._step = _CONNACK
                return None
            b = self.sock.read(1)
            if b is None:
                return None
            if b == b"":
                raise OSError(-1)       # the broker closed the connection
            resp = b + self._read(3)
            if resp[0] != _CONNACK or resp[1] != 2:
                raise OSError(-2)
            if resp[3] != 0:
                raise MQTTException(resp[3])    # 4: bad credentials, 5: not authorised
            self._step = 0
            return resp[2] & 1      # session present
        except BaseException:
            self.close()
            raise

    def _writable(self):
        # Poll for the end of a non-blocking TCP connect: writable once connected, an error
        # or hang-up when refused (the socket was closed on us). One poller a connect, not
        # one a step (a step comes every 50 ms for up to the timeout).
        if self._poller is None:
            self._poller = select.poll()
            self._poller.register(self.sock, select.POLLOUT)
        for _, ev in self._poller.ipoll(0):
            self._poller = None
            if ev & (select.POLLERR | select.POLLHUP):
                raise OSError(errno.ECONNREFUSED)
            return True
        return False

    def _send_connect(self):
        # variable header: protocol name "MQTT", level 4, flags, keepalive (3.1.2)
        msg = bytearray(b"\0\x04MQTT\x04\x02\0\0")
        sz = 10 + 2 + len(self.client_id)
        msg[7] = self._clean << 1
        if self.user:
            sz += 2 + len(self.user) + 2 + len(self.pswd or b"")
            msg[7] |= 0xC0
        if self.keepalive:
            msg[8] |= self.keepalive >> 8
            msg[9] |= self.keepalive & 0xFF
        if self.lw_topic:
            sz += 2 + len(self.lw_topic) + 2 + len(self.lw_msg)
            msg[7] |= 0x4 | (self.lw_qos & 0x1) << 3 | (self.lw_qos & 0x2) << 3
            msg[7] |= self.lw_retain << 5
        self._head(_CONNECT, sz)
        self._write(msg)
        self._send_str(self.client_id)
        if self.lw_topic:
            self._send_str(self.lw_topic)
            self._send_str(self.lw_msg)
        if self.user:
            self._send_str(self.user)
            self._send_str(self.pswd or b"")

    def close(self):
        self._poller = None
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def disconnect(self):
        try:
            self._write(_DISCONNECT)
        finally:
            self.close()

    def ping(self):
        self._write(_PINGREQ)

    def publish(self, topic, msg, retain=False, qos=0):
        if qos not in (0, 1):
            raise ValueError("qos 0 or 1 (this client has no QoS 2)")
        sz = 2 + len(topic) + len(msg)
        if qos:
            sz += 2
        self._head(_PUBLISH | qos << 1 | retain, sz)
        self._send_str(topic)
        if qos:
            pid = self._next_pid()
            self._write(struct.pack("!H", pid))
        self._write(msg)
        if qos == 1:
            deadline = time.ticks_add(time.ticks_ms(), self.timeout * 1000)
            while time.ticks_diff(deadline, time.ticks_ms()) > 0:
                op = self.wait_msg()
                if op == _PUBACK:
                    if self._last_pid == pid:
                        return
            raise OSError(110)      # ETIMEDOUT: no PUBACK; the caller reconnects and resends

    def subscribe(self, topic, qos=0):
        if self.cb is None:
            raise ValueError("set_callback before subscribe")
        pid = self._next_pid()
        self._head(_SUBSCRIBE, 2 + 2 + len(topic) + 1)
        self._write(struct.pack("!H", pid))
        self._send_str(topic)
        self._write(bytes((qos,)))
        deadline = time.ticks_add(time.ticks_ms(), self.timeout * 1000)
        while time.ticks_diff(deadline, time.ticks_ms()) > 0:
            op = self.wait_msg()
            if op == _SUBACK:
                if self._last_pid == pid:
                    if self._last_code == 0x80:
                        raise MQTTException(0x80)   # the broker's ACL refused the topic
                    return
        raise OSError(110)

    _last_pid = 0
    _last_code = 0

    def wait_msg(self, block=True):
        """One packet from the broker: a PUBLISH goes to the callback (and is acked when
        QoS 1); returns the packet type, or None when nothing came (at once when not
        `block`, else within the timeout)."""
        b = self.sock.read(1)
        if b is None and block:
            deadline = time.ticks_add(time.ticks_ms(), self.timeout * 1000)
            while b is None and time.ticks_diff(deadline, time.ticks_ms()) > 0:
                b = self.sock.read(1)
        if b is None:
            return None
        if b == b"":
            raise OSError(-1)
        op = b[0]
        kind = op & 0xF0
        if kind == _PUBLISH:
            n = self._recv_len()
            tl = self._u16()
            if tl + 2 > n:
                raise OSError(-2)
            topic = self._read(tl)
            n -= tl + 2
            qos = (op >> 1) & 3
            pid = 0
            if qos:
                if qos > 1 or n < 2:
                    raise OSError(-2)   # we subscribe at QoS 1: a broker never sends QoS 2
                pid = self._u16()
                n -= 2
            buf = self.rxbuf
            if buf is None or self.lent and n <= len(buf):
                self.cb(topic, self._read(n))       # its own bytes (umqtt.simple's way)
            elif n > len(buf):
                # Discarded, not allocated; still acknowledged, or the broker would send it
                # again at every reconnect. Its sender hears of it through on_refused.
                self._drain(n)
                if self.on_refused is not None:
                    self.on_refused(topic, n)
            else:
                self._readinto(buf, n)
                self.lent = True
                self.cb(topic, memoryview(buf)[:n])
            if qos == 1:
                self._write(struct.pack("!BBH", _PUBACK, 2, pid))
            return _PUBLISH
        n = self._recv_len()
        data = self._read(n) if n else b""
        if kind == _PUBACK or kind == _SUBACK:
            if len(data) < 2:
                raise OSError(-2)
            self._last_pid = struct.unpack("!H", data[:2])[0]
            self._last_code = data[2] if kind == _SUBACK and len(data) > 2 else 0
        return kind

    def check_msg(self, attempts=2):
        """What arrived since, without waiting (umqtt.simple's non-blocking read)."""
        return self.wait_msg(block=False)
