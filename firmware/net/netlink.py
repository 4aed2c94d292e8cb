# The network transport (SPEC 13): the same agent as the serial link, its bodies carried as
# MQTT messages on ek/<id>/up (ours) and ek/<id>/down (the fleet service's), QoS 1, with a
# persistent session (clean_session false) so commands wait for a device that sleeps.
#
# Driven by the scheduler (poll() every few seconds, never blocking longer than the socket
# timeout): connect when the network is up, with exponential backoff and jitter on failure
# (a broker restart must not see a whole fleet reconnect in step); read what the broker
# holds; answer through the agent; ping before the keepalive runs out. Nothing here decides
# what leaves the journal: that stays the signed TELEMETRY_ACK's job (services.ack).
try:
    from umqtt.simple import MQTTClient     # frozen into the ESP32 / Pico W images
except ImportError:
    from mqtt import MQTTClient             # ours, same API (the unix VM has none)

import netcfg
import nettls

_TAG_SIGN1 = const(0xD2)    # CBOR tag 18: only signed bodies cross a broker (SPEC 13.2)
_INBOX = const(4)           # bodies taken per poll; more wait in the broker (QoS 1)
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
        self.connected = False
        self._inbox = []
        self._backoff = _BACKOFF_MIN_MS
        self._next_try = hal.ticks_ms()
        self._last_out = hal.ticks_ms()
        self.sent = 0
        self.received = 0
        self.dropped = 0
        self.connects = 0
        self.failures = 0

    # -- connection --------------------------------------------------------------------
    def _jitter(self, ms):
        # Up to half the delay again, from the board's RNG: a fleet spreads out.
        r = self.hal.random_bytes(2)
        return ms + (ms // 2) * (r[0] << 8 | r[1]) // 65536

    def _fail(self):
        self.client.close()
        self.connected = False
        self.failures += 1
        self._next_try = self.hal.ticks_add(self.hal.ticks_ms(), self._jitter(self._backoff))
        self._backoff = min(self._backoff * 2, _BACKOFF_MAX_MS)

    def _connect(self):
        if not self.hal.net_up(self.cfg):
            self._fail()
            return False
        try:
            self.client.connect(clean_session=False)
            self.client.subscribe(self.down, 1)
        except Exception:   # OSError, or MQTTException: refused (credentials, ACL)
            self._fail()
            return False
        self.connected = True
        self.connects += 1
        self._backoff = _BACKOFF_MIN_MS
        self._last_out = self.hal.ticks_ms()
        return True

    def close(self):
        if self.connected:
            try:
                self.client.disconnect()
            except OSError:
                pass
        self.client.close()
        self.connected = False

    # -- traffic -----------------------------------------------------------------------
    def _on_message(self, topic, body):
        if topic != self.down or len(body) > self.max_frame or not body \
                or body[0] != _TAG_SIGN1 or len(self._inbox) >= _INBOX:
            self.dropped += 1
            return
        self._inbox.append(body)

    def poll(self):
        """Connect if due, take what the broker holds for us, answer it, keep alive."""
        hal = self.hal
        if self.connected and not hal.net_up(self.cfg):
            self._fail()        # the network went: the session waits in the broker
            return
        if not self.connected:
            if hal.ticks_diff(self._next_try, hal.ticks_ms()) > 0 or not self._connect():
                return
        try:
            while len(self._inbox) < _INBOX and self.client.check_msg() is not None:
                pass
            if hal.ticks_diff(hal.ticks_ms(), self._last_out) > self.cfg["keepalive"] * 500:
                self.client.ping()
                self._last_out = hal.ticks_ms()
        except OSError:
            self._fail()
        while self._inbox:
            body = self._inbox.pop(0)
            self.received += 1
            for answer in self.agent.handle(body):
                if answer[0] == _TAG_SIGN1:
                    self.send(answer)
            then = self.agent.after_reply
            if then is not None:
                self.agent.after_reply = None
                then()

    def send(self, body):
        """Publish one body (QoS 1, PUBACK awaited); False when not connected or it failed:
        the caller's data stays journaled and goes again on its retry."""
        if not self.connected:
            return False
        if not self.hal.net_up(self.cfg):
            self._fail()
            return False
        try:
            self.client.publish(self.up, body, qos=1)
        except OSError:
            self._fail()
            return False
        self._last_out = self.hal.ticks_ms()
        self.sent += 1
        return True

    def stats(self):
        out = netcfg.public(self.cfg)       # the broker, never the credentials
        out.update({"connected": self.connected, "connects": self.connects, "sent": self.sent,
                    "received": self.received, "dropped": self.dropped,
                    "failures": self.failures})
        return out


def _b(text):
    return None if text is None else text.encode()
