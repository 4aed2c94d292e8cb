"""The embedded MQTT broker (amqtt, pure Python, MQTT 3.1.1): what `make demo`, the tests and
a single-site install use, so nothing but pip is needed. It enforces SPEC 13.4's topic
rules without passwords (broker_acl.py); deployments use a real broker (Mosquitto, EMQX,
HiveMQ) with credentials and the same ACL; docs/fleet.md.

amqtt keeps sessions (clean_session false, QoS 1 queues) in memory: a broker restart forgets
queued messages, which SPEC 13 tolerates (a device keeps every record until the service's
signed ack; a command is sent again until answered).
"""
import asyncio
import concurrent.futures
import logging
import socket
import threading

from edgekit.errors import EdgekitError

DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883


def config(host="127.0.0.1", port=DEFAULT_PORT, tls_cert=None, tls_key=None):
    listener = {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 0}
    if tls_cert:
        # mqtts:// (SPEC 13.6): clients verify this chain; the broker asks for no client
        # certificate (a device is named by its username, believed by its signatures).
        listener.update(ssl=True, certfile=str(tls_cert), keyfile=str(tls_key))
    return {
        "listeners": {"default": listener},
        # Sessions of a device that sleeps for a day must outlive it (its queued commands).
        "session_expiry_interval": None,
        # SPEC 13.4's rules (fleet/broker_acl.py): named clients, each device on its topics.
        "plugins": {"edgekit.fleet.broker_acl.DeviceAuthPlugin": {},
                    "edgekit.fleet.broker_acl.DeviceTopicPlugin": {}},
    }


def free_port(host="127.0.0.1"):
    """A TCP port nothing listens on now (for tests and `--port 0`)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _quiet():
    # amqtt logs every connection and packet at INFO; a busy fleet would drown the service.
    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.WARNING)


class EmbeddedBroker:
    """An amqtt broker on its own thread and event loop. `start()` returns once it listens;
    `stop()` closes every connection (what a broker restart looks like to clients)."""

    def __init__(self, host="127.0.0.1", port=0, tls_cert=None, tls_key=None):
        if bool(tls_cert) != bool(tls_key):
            raise EdgekitError("a TLS listener needs both the certificate and its key")
        self.host = host
        self.port = port or free_port(host)
        # A port we chose can be taken by another process between free_port() and the bind
        # (parallel test workers did): the first start then picks another. A restart keeps
        # the port its clients know.
        self._chosen = not port
        self.tls_cert, self.tls_key = tls_cert, tls_key
        self._loop = None
        self._broker = None
        self._thread = None

    @property
    def url(self):
        return f"{'mqtts' if self.tls_cert else 'mqtt'}://{self.host}:{self.port}"

    def start(self, timeout=10.0):
        for _ in range(3 if self._chosen else 1):
            failed = self._start_once(timeout)
            if not failed or "already in use" not in str(failed[0]) or not self._chosen:
                break
            self.port = free_port(self.host)
        self._chosen = False
        if failed:
            raise EdgekitError(f"the embedded MQTT broker did not start on {self.host}:"
                               f"{self.port}: {failed[0]} (is the "
                               "port taken? choose another with --port)")
        return self

    def _start_once(self, timeout):
        """Start on self.port; [] once it listens, else [the reason]."""
        _quiet()
        ready = threading.Event()
        failed = []

        def run():
            loop = self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                self._broker = _tracking_broker()(
                    config(self.host, self.port, self.tls_cert, self.tls_key), loop=loop)
                loop.run_until_complete(self._broker.start())
            except Exception as exc:  # noqa: BLE001 — reported to the caller below
                failed.append(exc)
                self._loop = None       # closed: nothing for stop() to do
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name=f"mqtt-broker:{self.port}", daemon=True)
        self._thread.start()
        if not ready.wait(timeout) and not failed:
            failed.append("timed out")
        return failed

    def stop(self, timeout=10.0):
        if self._loop is None:
            return
        loop, self._loop = self._loop, None
        try:
            asyncio.run_coroutine_threadsafe(self._broker.shutdown(), loop).result(timeout)
        except concurrent.futures.TimeoutError:
            # amqtt's shutdown can wait forever on a client handler's queue (seen in CI):
            # its connections are then still open, and clients would only notice the
            # restart at their keepalive. They are aborted below, its handlers cancelled.
            pass
        finally:
            loop.call_soon_threadsafe(_abort_cancel_and_stop, loop, self._broker)
            self._thread.join(timeout)

    def inject(self, topic, payload, qos=1, timeout=5.0):
        """Publish as the broker itself, past every ACL: what a compromised broker (or one
        with stolen credentials) can do. Tests use it to prove signatures, not the ACL,
        decide what the service and devices believe."""
        asyncio.run_coroutine_threadsafe(
            self._broker.internal_message_broadcast(topic, bytes(payload), qos),
            self._loop).result(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _tracking_broker():
    """amqtt's Broker, remembering each client connection until it ends, so a stop can close
    every one whatever amqtt's own shutdown left (a broker restart closes them all)."""
    from amqtt.broker import Broker      # here: the rest of edgekit runs without amqtt

    class TrackingBroker(Broker):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.open_writers = set()

        async def stream_connected(self, reader, writer, listener_name):
            self.open_writers.add(writer)
            try:
                await super().stream_connected(reader, writer, listener_name)
            finally:
                self.open_writers.discard(writer)

    return TrackingBroker


def _abort_cancel_and_stop(loop, broker):
    """Abort the client connections still open, cancel what the broker left running on its
    loop, then stop the loop once they ran."""
    for writer in list(broker.open_writers):
        writer.transport.abort()
    # A shutdown that hung never reached its listeners: close them, or a restart on the
    # same port finds it still bound ("address already in use").
    for server in list(getattr(broker, "_servers", {}).values()):
        if getattr(server, "instance", None) is not None:
            server.instance.close()
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()

    async def settle():
        # A cancelled task may await in its cleanup: let it finish (bounded) before the loop
        # stops, or it is destroyed pending.
        await asyncio.wait(tasks, timeout=2.0)
        loop.stop()
    if tasks:
        loop.create_task(settle())
    else:
        loop.stop()


def serve_forever(host="127.0.0.1", port=DEFAULT_PORT, tls_cert=None, tls_key=None):
    """`edgekit fleet broker`: run until interrupted."""
    broker = EmbeddedBroker(host, port, tls_cert, tls_key).start()
    try:
        threading.Event().wait()
    finally:
        broker.stop()
