"""`edgekit fleet serve`: the MQTT side of the fleet service. One paho client subscribed to
every device's up-topic (QoS 1, persistent session, so messages published while the service
was away are delivered when it comes back); each message goes through Ingest (verify, store,
answer) on the client's own thread, which owns the registry connection, and the answers are
published QoS 1 on the device's down-topic.
"""
import json
import sys
import threading
import urllib.parse
import urllib.request

from edgekit.errors import EdgekitError
from edgekit.fleet import topics


def parse_url(url):
    """mqtt://HOST[:PORT] -> (host, port)."""
    parts = urllib.parse.urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme != "mqtt" or not parts.hostname:
        raise EdgekitError(f"broker URL {url!r}: write mqtt://HOST[:PORT] (mqtts is not "
                           "supported by this client yet)")
    try:
        port = parts.port or 1883
    except ValueError:
        raise EdgekitError(f"broker URL {url!r}: the port is not a number") from None
    return parts.hostname, port


class AlarmSink:
    """A log line for every alarm set or cleared, and a POST of it to `webhook` (JSON) on a
    background thread: a slow or dead webhook never holds up storing and acknowledging."""

    def __init__(self, webhook=None, out=None, timeout=5.0):
        self.webhook = webhook
        self.out = out      # None: sys.stderr as it is when an alarm comes
        self.timeout = timeout
        self.failures = 0
        self.sent = 0

    def __call__(self, device_id, row):
        state = "SET" if row["active"] else "CLEARED"
        print(f"ALARM {state} {device_id} {row['name']} journal #{row['journal_seq']} "
              f"at {row['time'] or 'unknown time'}", file=self.out or sys.stderr, flush=True)
        if self.webhook:
            doc = {"device": device_id, "alarm": row["name"], "active": bool(row["active"]),
                   "time": row["time"], "journal_seq": row["journal_seq"],
                   "received_at": row["received_at"]}
            threading.Thread(target=self._post, args=(doc,), daemon=True).start()

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
    is set; reconnection to a broker that went away is paho's (1 s .. 30 s backoff)."""

    def __init__(self, ingest, host, port, client_id="edgekit-fleet", group=None,
                 log=None, username="edgekit-fleet", password=None):
        import paho.mqtt.client as mqtt     # here: the rest of edgekit runs without paho
        self.ingest = ingest
        self.host, self.port = host, port
        self.log = log
        self.filter = topics.shared(topics.UP_FILTER, group) if group else topics.UP_FILTER
        self.connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=False)
        self.client.username_pw_set(username, password)   # SPEC 13.4: the service's own user
        self.client.reconnect_delay_set(1, 30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def _on_connect(self, client, userdata, flags, reason, properties=None):
        if reason.is_failure:
            print(f"fleet: broker refused the connection: {reason}", file=self.log or sys.stderr, flush=True)
            return
        client.subscribe(self.filter, qos=topics.QOS)
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason, properties=None):
        self.connected.clear()
        print(f"fleet: broker connection lost ({reason}); reconnecting", file=self.log or sys.stderr,
              flush=True)

    def _on_message(self, client, userdata, message):
        for topic, body in self.ingest.handle(message.topic, message.payload):
            client.publish(topic, body, qos=topics.QOS)

    def run(self, stop):
        """Serve until `stop` is set. paho's loop runs on this thread, so the registry
        connection (sqlite) is used only here; a watcher ends the loop when told."""
        self.client.connect_async(self.host, self.port, keepalive=30)

        def watch():
            stop.wait()
            self.client.disconnect()

        threading.Thread(target=watch, name="fleet-stop", daemon=True).start()
        # retry_first_connection: a broker that is not up yet is waited for, not an error
        # (a service started before its broker, or during a broker restart).
        self.client.loop_forever(retry_first_connection=True)
