"""One device's conversation through the broker (SPEC 13.7): the serial Session's requests,
retransmission and answer matching, carried as MQTT messages on the device's topics
instead of COBS frames on a cable, so everything built on a Session (the OTA Pusher's
window, gaps and resume) runs over the network unchanged.

    bodies = DeviceTopics(parse_url(url), device_id)     # the transport: bodies, not bytes
    session = FleetSession(bodies, device_ring, device_id, signer, next_seq)
    session.hello()                                      # operator-signed over a broker

The broker is a courier, never trusted (SPEC 13): what comes back is believed only when
signed by the device's registered key and naming the device as sender, except the OTA
transfer's unsigned answers (chunk acks, manifest-part status, a chunk's ERROR), whose worst
forgery makes the transfer resend or stop, never install anything the manifest's digests
do not cover.
"""
import os
import queue
import threading
import time

from edgekit import catalog as C
from edgekit.errors import LinkError, ProtocolError
from edgekit.fleet import topics
from edgekit.fleet.topics import SERVICE_USER
from edgekit.protocol import messages
from edgekit.protocol.session import Session

# The only unsigned bodies a device may send over the network (SPEC 13.7).
UNSIGNED_UP = (C.OTA_CHUNK_ACK, C.OTA_STATUS, C.ERROR)


class DeviceTopics:
    """An MQTT client as a body transport: publish on ek/<id>/down, read ek/<id>/up.
    paho's network thread files what arrives; `get()` takes it from there."""

    def __init__(self, broker, device_id, username=SERVICE_USER, password=None,
                 client_id=None, connect_timeout=10.0):
        """`broker`: a BrokerAddress (fleet/service.parse_url: mqtt:// or mqtts://)."""
        import paho.mqtt.client as mqtt     # here: the rest of edgekit runs without paho
        self.broker = broker
        self.host, self.port = broker
        self.device_id = device_id
        self.up, self.down = topics.up(device_id), topics.down(device_id)
        self._inbox = queue.Queue(maxsize=1024)
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.dropped = 0
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  # One per device: a campaign's parallel pushes from
                                  # one process must not take over each other's session.
                                  client_id=client_id or
                                  f"edgekit-ota-{os.getpid()}-{device_id}",
                                  clean_session=True)
        self.client.username_pw_set(username, password)
        # A broker outage mid-transfer: paho reconnects (and subscribes again, on_connect)
        # while the Session's retransmission and the Pusher's resume carry the transfer on.
        self.client.reconnect_delay_set(0.2, 2)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: (self.connected.clear(),
                                                self.subscribed.clear())
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        broker.apply(self.client)           # TLS for mqtts://
        broker.connect(self.client)         # a refused certificate or no broker: said
        self.client.loop_start()
        if not self.subscribed.wait(connect_timeout):
            self.close()
            raise LinkError(f"the broker at {broker!r} did not accept the subscription to "
                            f"{self.up} within {connect_timeout:.0f} s (are you the service "
                            "user? --username)")

    def _on_connect(self, client, userdata, flags, reason, properties=None):
        if reason.is_failure:
            return          # paho tries again; a refusal shows as a LinkError on waiting
        self.connected.set()
        client.subscribe(self.up, qos=topics.QOS)

    def _on_message(self, client, userdata, m):
        if m.topic != self.up:
            return
        try:
            self._inbox.put_nowait(bytes(m.payload))
        except queue.Full:
            self.dropped += 1           # nobody reads: the Session's retransmission repairs

    def publish(self, body, qos):
        """Hand one body to paho (it sends once connected; QoS 1 waits in its queue)."""
        self.client.publish(self.down, body, qos=qos)

    def get(self, timeout):
        try:
            return self._inbox.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def close(self):
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


def _is_chunk(body):
    # An unsigned envelope [OTA_CHUNK, seq, payload]: CBOR array(3), uint8 0x72.
    return body[:3] == bytes((0x83, 0x18, C.OTA_CHUNK))


class FleetSession(Session):
    """A Session whose frames are MQTT messages. Requests that the device answers from its
    response cache are resent as they are on a cable; a timeout never goes below
    `min_timeout`: a device polls the broker only every poll_s until a conversation starts."""

    def __init__(self, bodies: DeviceTopics, device_keys, device_id, signer, next_seq,
                 max_frame=C.MAX_FRAME_DEFAULT, min_timeout=12.0, retries=2):
        super().__init__(bodies, signer=signer, next_seq=next_seq, device_keys=device_keys,
                         max_frame=max_frame, timeout=min_timeout, retries=retries)
        self.device_id = device_id
        self.min_timeout = min_timeout

    def send_body(self, body: bytes):
        if len(body) > self.max_frame:
            raise ProtocolError(f"message of {len(body)} bytes exceeds the device's max frame "
                                f"({self.max_frame}); split it", C.E_TOO_LARGE)
        # OTA chunks at QoS 0 (SPEC 13.7): the transfer acks and resends them itself, and a
        # chunk the broker queued for a device that went away would only come back stale.
        self.transport.publish(body, 0 if _is_chunk(body) else topics.QOS)
        self.stats["frames_out"] += 1

    def _fill(self, timeout):
        body = self.transport.get(timeout)
        if body is None:
            return False
        self._take(body)
        while True:                     # whatever else is already here, without waiting
            body = self.transport.get(0)
            if body is None:
                return True
            self._take(body)

    def _take(self, body: bytes):
        try:
            msg = messages.open_body(body, self.device_keys)
        except ProtocolError:
            self.stats["rejected_in"] += 1      # forged, damaged, or another key's
            return
        if msg.signed and msg.sender != self.device_id or \
                not msg.signed and msg.type not in UNSIGNED_UP:
            self.stats["rejected_in"] += 1
            return
        self.stats["frames_in"] += 1
        self._pending.append(msg)

    def exchange(self, seq, body, timeout=None, expect=None, request_type=None):
        timeout = max(self.min_timeout if timeout is None else timeout, self.min_timeout)
        return super().exchange(seq, body, timeout=timeout, expect=expect,
                                request_type=request_type)

    def hello(self, timeout=None):
        """HELLO signed (only signed bodies reach a device over the network, SPEC 13.2),
        answered by the device's signed CAPS."""
        sent = time.time()
        caps = self.request(C.HELLO, {C.K_PROTO: [C.PROTOCOL_VERSION, C.PROTOCOL_VERSION]},
                            sign=True, timeout=timeout, expect=C.CAPS)
        if not caps.signed:
            raise ProtocolError("the device's CAPS over the broker is not signed by its key")
        self.last_hello = (caps.payload, sent, time.time())
        max_frame = caps.payload.get(C.K_MAX_FRAME)
        if isinstance(max_frame, int) and 64 <= max_frame <= C.MAX_FRAME_LIMIT:
            # The cable's limit: the device reads each MQTT body into one buffer of
            # max_frame bytes taken at boot, as it does a frame (SPEC 13.7).
            self.max_frame = max_frame
        return caps

    def wait_connected(self, timeout):
        if not self.transport.connected.wait(timeout):
            raise LinkError(f"no connection to the broker at {self.transport.broker!r} for "
                            f"{timeout:.0f} s")
