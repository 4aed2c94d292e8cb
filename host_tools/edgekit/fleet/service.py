"""`edgekit fleet serve`: the MQTT side of the fleet service. One paho client subscribed to
every device's up-topic (QoS 1, persistent session, so messages published while the service
was away are delivered when it comes back); each message goes through Ingest (verify, store,
answer) on the client's own thread, which owns the registry connection, and the answers are
published QoS 1 on the device's down-topic.
"""
import json
import queue
import sys
import threading
import urllib.parse
import urllib.request

from edgekit.errors import EdgekitError
from edgekit.fleet import topics


class BrokerAddress:
    """Where the broker is and how to reach it: host, port, and for mqtts:// the TLS context
    (CERT_REQUIRED, host name checked, against `ca` or the system's trust store). Unpacks as
    (host, port) for code written before TLS."""

    def __init__(self, host, port, tls=False, ca=None):
        self.host, self.port, self.tls, self.ca = host, port, tls, ca

    def __iter__(self):
        return iter((self.host, self.port))

    def __repr__(self):
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def apply(self, client):
        """Give a paho client this address's TLS settings (nothing for mqtt://)."""
        if self.tls:
            from edgekit.fleet.tls import client_context
            client.tls_set_context(client_context(self.ca))

    def connect(self, client, keepalive=30):
        """client.connect with the errors a user can act on: a certificate that fails
        verification (fleet/tls.refused) or a broker that cannot be reached (LinkError)."""
        import ssl
        from edgekit.errors import LinkError
        from edgekit.fleet.tls import refused
        try:
            client.connect(self.host, self.port, keepalive=keepalive)
        except ssl.SSLCertVerificationError as exc:
            raise refused(exc, self.host, self.port, self.ca) from None
        except OSError as exc:
            raise LinkError(f"cannot reach the MQTT broker at {self!r}: {exc}; check "
                            "--broker") from None


def parse_url(url, ca=None):
    """mqtt://HOST[:PORT] (1883) or mqtts://HOST[:PORT] (8883, TLS) -> BrokerAddress. `ca`:
    the broker's CA certificate file, for mqtts:// only (default: the system's trust store)."""
    parts = urllib.parse.urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise EdgekitError(f"broker URL {url!r}: write mqtt://HOST[:PORT] or "
                           "mqtts://HOST[:PORT] (TLS)")
    tls = parts.scheme == "mqtts"
    if ca and not tls:
        raise EdgekitError(f"--ca is for a TLS broker: write mqtts://{parts.netloc}")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise EdgekitError(f"broker URL {url!r}: the port is not a number") from None
    if ca:
        from edgekit.fleet.tls import read_ca
        read_ca(ca)             # refused now, with the reason, not at the first connect
    return BrokerAddress(parts.hostname, port, tls, ca)


class AlarmSink:
    """A log line for every alarm set or cleared, and a POST of it to `webhook` (JSON) from
    one background sender: a slow or dead webhook never holds up storing and acknowledging,
    and the POSTs leave in the order the alarms were stored (a thread per POST let a CLEARED
    overtake its SET). The queue is bounded: past QUEUE_MAX waiting POSTs, new ones are
    dropped and counted (the log line and the stored event remain)."""

    QUEUE_MAX = 1000

    def __init__(self, webhook=None, out=None, timeout=5.0):
        self.webhook = webhook
        self.out = out      # None: sys.stderr as it is when an alarm comes
        self.timeout = timeout
        self.failures = 0
        self.sent = 0
        self.dropped = 0
        self._queue = None

    def __call__(self, device_id, row):
        state = "SET" if row["active"] else "CLEARED"
        print(f"ALARM {state} {device_id} {row['name']} journal #{row['journal_seq']} "
              f"at {row['time'] or 'unknown time'}", file=self.out or sys.stderr, flush=True)
        if self.webhook:
            doc = {"device": device_id, "alarm": row["name"], "active": bool(row["active"]),
                   "time": row["time"], "journal_seq": row["journal_seq"],
                   "received_at": row["received_at"]}
            if self._queue is None:
                self._queue = queue.Queue(self.QUEUE_MAX)
                threading.Thread(target=self._sender, daemon=True,
                                 name="edgekit-alarm-webhook").start()
            try:
                self._queue.put_nowait(doc)
            except queue.Full:
                self.dropped += 1

    def _sender(self):
        while True:
            self._post(self._queue.get())

    def _post(self, doc):
        req = urllib.request.Request(self.webhook, data=json.dumps(doc).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                resp.read()
            self.sent += 1
        except Exception as exc:  # noqa: BLE001 — a webhook is best effort, logged
            self.failures += 1
            print(f"alarm webhook {self.webhook} failed: {exc}", file=self.out or sys.stderr,
                  flush=True)


class FleetService:
    """Runs an Ingest against a broker. `run(stop)` blocks until `stop` (a threading.Event)
    is set; reconnection to a broker that went away is paho's (1 s .. 30 s backoff).
    `broker`: a BrokerAddress (parse_url) when it says more than host and port (mqtts://)."""

    def __init__(self, ingest, host, port, client_id="edgekit-fleet", group=None,
                 log=None, username="edgekit-fleet", password=None, broker=None):
        import paho.mqtt.client as mqtt     # here: the rest of edgekit runs without paho
        self.ingest = ingest
        self.host, self.port = host, port
        self.broker = broker or BrokerAddress(host, port)
        self.log = log
        self.filter = topics.shared(topics.UP_FILTER, group) if group else topics.UP_FILTER
        self.connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=False)
        self.client.username_pw_set(username, password)   # SPEC 13.4: the service's own user
        self.client.reconnect_delay_set(1, 30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self._stopping = False
        self.client.on_message = self._on_message
        self.broker.apply(self.client)

    def _on_connect(self, client, userdata, flags, reason, properties=None):
        if reason.is_failure:
            print(f"fleet: broker refused the connection: {reason}", file=self.log or sys.stderr, flush=True)
            return
        client.subscribe(self.filter, qos=topics.QOS)
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason, properties=None):
        self.connected.clear()
        if self._stopping:
            return                  # our own disconnect at the end of run(): no news
        print(f"fleet: broker connection lost ({reason}); reconnecting", file=self.log or sys.stderr,
              flush=True)

    def _on_message(self, client, userdata, message):
        for topic, body in self.ingest.handle(message.topic, message.payload):
            client.publish(topic, body, qos=topics.QOS)

    def _first_connect(self, stop):
        """Connect, waiting for a broker that is not up yet (a service started before its
        broker, or during a restart); False if told to stop first. A certificate that fails
        verification is not waited out: it is a wrong --ca or host, or not our broker."""
        import ssl
        from edgekit.fleet.tls import refused
        delay, told = 0.5, False
        while not stop.is_set():
            try:
                self.client.connect(self.host, self.port, keepalive=30)
                return True
            except ssl.SSLCertVerificationError as exc:
                raise refused(exc, self.host, self.port, self.broker.ca) from None
            except OSError as exc:
                if not told:
                    print(f"fleet: waiting for the broker at {self.broker!r} ({exc})",
                          file=self.log or sys.stderr, flush=True)
                    told = True
                stop.wait(delay)
                delay = min(delay * 2, 5.0)
        return False

    def run(self, stop):
        """Serve until `stop` is set. paho's loop runs on this thread, so the registry
        connection (sqlite) is used only here; a watcher ends the loop when told."""
        if not self._first_connect(stop):
            return

        def watch():
            stop.wait()
            self._stopping = True
            self.client.disconnect()

        threading.Thread(target=watch, name="fleet-stop", daemon=True).start()
        self.client.loop_forever()
