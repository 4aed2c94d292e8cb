# The network transport (SPEC 13): the same agent as the serial link, its bodies carried as
# MQTT messages on ek/<id>/up (ours) and ek/<id>/down (the fleet service's), QoS 1, with a
# persistent session (clean_session false) so commands wait for a device that sleeps.
#
# Driven by the scheduler (poll() every few seconds, never blocking longer than the socket
# timeout): connect when the network is up, with exponential backoff and jitter on failure
# (a broker restart must not see a whole fleet reconnect in step); read what the broker
# holds; answer through the agent; ping before the keepalive runs out. Nothing here decides
# what leaves the journal: that stays the signed TELEMETRY_ACK's job (services.ack).
#
# A battery device (connect = "to_report") is connected only while it has something to say or
# to hear: a push connects at once, the scheduled poll (every poll_s) connects to take what
# the broker queued in its persistent session, and once nothing has come for _BURST_MS (the
# ack of the push, the queued commands and their answers are done) it disconnects and powers
# its radio down (hal.net_down). The broker keeps its QoS 1 messages meanwhile.
#
# A conversation in progress (an OTA transfer: a chunk every few milliseconds, each waiting
# for its ack) cannot live on one poll every poll_s with 4 bodies each: once a body arrived,
# a poll keeps taking and answering for up to _BURST_BUDGET_MS, and the next poll comes
# _BURST_POLL_MS later instead of poll_s, until the broker has been quiet for _BURST_MS.
import gc

import catalog as C

# Ours before the board image's umqtt.simple (frozen into the ESP32 / Pico W images): it reads
# each body into one buffer taken here at set-up, where umqtt.simple allocates every message
# anew, which a fragmented heap could not do for a 1 KB body after a power cut (a water
# meter: 22 KB free, no 1 KB block). umqtt.simple (same API) serves only an image without
# firmware/net/mqtt.py; every body is then an allocation, and one that fails is counted in
# net.oom and sent again by its sender.
try:
    from mqtt import MQTTClient
except ImportError:
    from umqtt.simple import MQTTClient

import netcfg
import nettls

_TAG_SIGN1 = const(0xD2)    # CBOR tag 18: signed bodies cross a broker (SPEC 13.2) ...
_ARRAY3 = const(0x83)       # ... and, unsigned, only OTA_CHUNK [0x72, seq, payload] (13.7):
_UINT8 = const(0x18)        # the manifest's digests cover the data, as on the serial link
_OTA_CHUNK = const(0x72)
_INBOX = const(4)           # bodies held at once (RAM: each up to max_frame); more wait
_BURST_BUDGET_MS = const(250)   # a poll answers for at most this long: other tasks run too
_BURST_POLL_MS = const(10)      # the next poll while a conversation goes on ...
_BURST_MS = const(3000)         # ... which it does until the broker is quiet this long
_CONNECT_POLL_MS = const(50)    # the next poll while a connect is under way
_BACKOFF_MIN_MS = const(1000)
_BACKOFF_MAX_MS = const(300000)


class NetLink:
    def __init__(self, hal, agent, device_id, cfg, max_frame):
        self.hal = hal
        self.agent = agent
        self.cfg = cfg
        self.up = ("ek/%s/up" % device_id).encode()
        self.down = ("ek/%s/down" % device_id).encode()
        host, port = netcfg.host_port(cfg["broker"])
        self.client = MQTTClient(device_id.encode(), host, port, user=device_id.encode(),
                                 password=_b(cfg.get("password")), keepalive=cfg["keepalive"],
                                 ssl=nettls.context(cfg))
        nettls.check(self.client)
        self.client.set_callback(self._on_message)
        self.max_frame = max_frame
        # The one receive buffer: a body is read into it and handed to the agent as a view
        # (no allocation of its size per message); a larger one is discarded and refused.
        self._lends = hasattr(self.client, "set_rxbuf")
        if self._lends:
            self.client.set_rxbuf(bytearray(max_frame))
            self.client.on_refused = self._on_refused
        self._refused = 0       # size of the last body refused as too large, to report
        self.sleepy = cfg.get("connect") == "to_report"
        self.connected = False
        # Ours (firmware/net/mqtt.py) connects in steps; umqtt.simple only at once.
        self._stepwise = hasattr(self.client, "begin_connect")
        self._connecting = False
        self._subscribed = False
        # Set by the runtime: makes the next poll come soon (a one-shot scheduler task).
        self.hurry = None
        self._last_rx = None
        self._inbox = []
        self._backoff = _BACKOFF_MIN_MS
        self._next_try = hal.ticks_ms()
        self._last_out = hal.ticks_ms()
        self.sent = 0
        self.received = 0
        self.dropped = 0
        self.connects = 0
        self.sleeps = 0         # a sleepy device's disconnects once quiet
        self.failures = 0
        self.polls = 0
        self.busy_polls = 0     # polls that took a body: received / busy_polls = per poll
        self.oom = 0            # bodies lost to a full heap (diag: the heap's edge)
        self.too_large = 0      # bodies above max_frame, discarded unread (an ERROR says so)

    # -- connection --------------------------------------------------------------------
    def _jitter(self, ms):
        # Up to half the delay again, from the board's RNG: a fleet spreads out.
        r = self.hal.random_bytes(2)
        return ms + (ms // 2) * (r[0] << 8 | r[1]) // 65536

    def _fail(self, grow=True):
        self.client.close()
        self.connected = False
        self.failures += 1
        self._next_try = self.hal.ticks_add(self.hal.ticks_ms(), self._jitter(self._backoff))
        if grow:
            self._backoff = min(self._backoff * 2, _BACKOFF_MAX_MS)

    def _connect(self, wait=False):
        """Connect, or take the connection one step further: True once connected. poll()
        connects in steps (a step never waits: a broker that takes seconds to answer, or a
        path that drops the CONNECT, no longer holds the device's serial link and tasks for
        the client's timeout); a battery device's push (`wait`) connects at once."""
        if not self.hal.net_up(self.cfg):
            # Our own network is down: nobody to spare, so the wait does not grow. It grows
            # on broker failures only; otherwise a Wi-Fi outage of a minute left the device
            # minutes away from its next try once the network was back (an OTA waiting).
            self._connecting = False
            self._fail(grow=False)
            return False
        c = self.client
        try:
            if self._connecting or (self._stepwise and not wait):
                if not self._connecting:
                    c.begin_connect(clean_session=False)
                    self._connecting = True
                present = c.connect_step()
                # A push while a connect is under way finishes that one (a second CONNECT
                # with the same client id makes the broker drop one of the two sessions).
                while present is None and wait:
                    present = c.connect_step()
                if present is None:
                    return False        # under way: poll() comes back soon
            else:
                present = c.connect(clean_session=False)
            self._connecting = False
            # A session the broker kept holds our subscription (MQTT 3.1.1 3.2.2.2), once
            # this boot has seen it granted: one round trip less on every reconnect.
            if not (present and self._subscribed):
                c.subscribe(self.down, 1)
                self._subscribed = True
        except Exception:   # OSError, or MQTTException: refused (credentials, ACL)
            self._connecting = False
            self._fail()
            return False
        self.connected = True
        self.connects += 1
        self._backoff = _BACKOFF_MIN_MS
        self._last_out = self.hal.ticks_ms()
        if self.sleepy:
            self._last_rx = self._last_out      # stay a while: the broker's queue comes now
        return True

    def close(self):
        if self.connected:
            try:
                self.client.disconnect()
            except OSError:
                pass
        self.client.close()
        self.connected = False
        self._connecting = False

    # -- traffic -----------------------------------------------------------------------
    def _on_message(self, topic, body):
        if topic != self.down or len(body) > self.max_frame or len(body) < 3 \
                or not (body[0] == _TAG_SIGN1 or body[0] == _ARRAY3 and body[1] == _UINT8
                        and body[2] == _OTA_CHUNK) or len(self._inbox) >= _INBOX:
            self.dropped += 1
            if type(body) is memoryview:
                self.client.release()
            return
        self._inbox.append(body)

    def _on_refused(self, topic, size):
        if topic == self.down:
            self.too_large += 1
            self._refused = size        # answered from poll(): this may be inside a publish

    def _refuse(self):
        # Unsigned bodies cannot be named (no seq was read): the ERROR says what to change.
        size = self._refused
        self._refused = 0
        self.send(self.agent.dev.error(
            None, C.E_TOO_LARGE, "a body of %d bytes over the network: at most %d (max_frame "
            "in CAPS); split it" % (size, self.max_frame)))

    def poll(self):
        """Connect if due, take what the broker holds for us, answer it, keep alive."""
        hal = self.hal
        if self.connected and not hal.net_up(self.cfg):
            self._fail(grow=False)      # the network went: the session waits in the broker
            return
        if not self.connected:
            if not self._connecting and hal.ticks_diff(self._next_try, hal.ticks_ms()) > 0:
                return
            if not self._connect():
                if self._connecting and self.hurry is not None:
                    self.hurry(_CONNECT_POLL_MS)
                return
        self.polls += 1
        start = hal.ticks_ms()
        took = 0
        while self.connected:
            # One packet, then its answer: one body alive at a time (a 1 KB block is what a
            # fragmented heap lacks first; the inbox fills only while a publish waits).
            try:
                op = self.client.check_msg()
                if hal.ticks_diff(hal.ticks_ms(), self._last_out) > self.cfg["keepalive"] * 500:
                    self.client.ping()
                    self._last_out = hal.ticks_ms()
            except OSError:
                op = None
                self._fail()
            except MemoryError:
                # A packet half read: the stream is out of step. Reconnect; the broker
                # sends QoS 1 messages again, the OTA sender resends its chunks.
                op = None
                self._drop_inbox()
                self.oom += 1
                gc.collect()
                self._fail()
            if self._refused and self.connected:
                self._refuse()
            if self._inbox:
                try:
                    took += self._answer()
                except MemoryError:
                    # Opening or answering a body did not fit the heap: those bodies are
                    # lost (a request is sent again, an OTA chunk resent), the task lives.
                    self._drop_inbox()
                    self.oom += 1
                    gc.collect()
            if op is None or hal.ticks_diff(hal.ticks_ms(), start) >= _BURST_BUDGET_MS:
                break
        now = hal.ticks_ms()
        if took:
            self.busy_polls += 1
            self._last_rx = now
        if self.hurry is not None and self._last_rx is not None \
                and hal.ticks_diff(now, self._last_rx) < _BURST_MS:
            # Mid-conversation: poll again at once, or reconnect as soon as the backoff
            # allows (not a whole poll_s later).
            wait = _BURST_POLL_MS if self.connected else hal.ticks_diff(self._next_try, now)
            self.hurry(wait if wait > _BURST_POLL_MS else _BURST_POLL_MS)
        elif self.sleepy and self.connected:
            self._sleep()

    def _sleep(self):
        # Quiet for _BURST_MS: what the broker held is taken and answered. A clean
        # DISCONNECT (the session and its queue stay in the broker), then the radio off.
        self.close()
        self.sleeps += 1
        self._last_rx = None
        down = getattr(self.hal, "net_down", None)
        if down is not None:
            down(self.cfg)

    def _drop_inbox(self):
        self._inbox = []
        if self._lends:
            self.client.release()

    def _answer(self):
        n = 0
        while self._inbox:
            body = self._inbox.pop(0)
            self.received += 1
            n += 1
            try:
                answers = self.agent.handle(body)
            finally:
                # What the agent keeps of a body it has copied (decoded): the buffer is
                # free before an answer is published, during which the next body may come.
                if type(body) is memoryview:
                    self.client.release()
            body = None
            for answer in answers:
                # Signed answers at QoS 1; unsigned ones are the OTA transfer's (chunk acks,
                # manifest parts' status, a chunk's ERROR): QoS 0, as their loss is what the
                # transfer's own retransmission repairs, and a PUBACK round trip per chunk
                # would halve its pace (SPEC 13.7).
                self.send(answer, 1 if answer[0] == _TAG_SIGN1 else 0)
            then = self.agent.after_reply
            if then is not None:
                self.agent.after_reply = None
                then()
        return n

    def send(self, body, qos=1):
        """Publish one body (QoS 1: PUBACK awaited); False when not connected or it failed:
        the caller's data stays journaled and goes again on its retry."""
        hal = self.hal
        if not self.connected and self.sleepy and (
                self._connecting or hal.ticks_diff(self._next_try, hal.ticks_ms()) <= 0):
            self._connect(wait=True)    # a sleeping device wakes its radio to report
        if not self.connected:
            return False
        if not hal.net_up(self.cfg):
            self._fail()
            return False
        try:
            self.client.publish(self.up, body, qos=qos)
        except OSError:
            self._fail()
            return False
        self._last_out = hal.ticks_ms()
        self.sent += 1
        if self.sleepy:
            # Stay for the service's answer (its ack), then sleep: polls follow at once.
            self._last_rx = self._last_out
            if self.hurry is not None:
                self.hurry(_BURST_POLL_MS)
        return True

    def stats(self):
        out = netcfg.public(self.cfg)       # the broker, never the credentials
        out.update({"connected": self.connected, "connecting": self._connecting,
                    "connects": self.connects, "sent": self.sent,
                    "received": self.received, "dropped": self.dropped,
                    "failures": self.failures, "polls": self.polls, "sleeps": self.sleeps,
                    "busy_polls": self.busy_polls, "oom": self.oom,
                    "too_large": self.too_large})
        return out


def _b(text):
    return None if text is None else text.encode()
