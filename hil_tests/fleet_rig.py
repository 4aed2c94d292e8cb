"""What the network HIL tests share (not a test module): `fleet serve` on a thread of the test
(the CLI's objects on the test's registry), a second service-user client that sees what a
device publishes, diag through the port, and stepping a paused board's clock until something
holds."""
import json
import queue
import threading
import time

import paho.mqtt.client as mqtt

from edgekit import catalog as C
from edgekit.cli import main as edgekit
from edgekit.fleet import topics
from edgekit.fleet.broker_acl import SERVICE_USER
from edgekit.fleet.ingest import Ingest
from edgekit.fleet.service import FleetService
from edgekit.protocol import messages
from edgekit.registry import telemetry as store
from edgekit.registry.db import Registry
from operator_cli import PASS

HOUR = 3600


def provision_networked(board, fleet_home, capsys, tmp_path, broker_url, net, config=None,
                        extra=(), kind="water_meter"):
    """`edgekit provision` of a device of `kind` with the broker and the `net` settings (and
    app `config`), as a technician runs it: (registry path, device id)."""
    (tmp_path / "net.json").write_text(json.dumps(net))
    argv = ["provision", board.url, "--kind", kind, "--site", "x", "--json",
            "--broker", broker_url, "--net", str(tmp_path / "net.json"), *extra]
    if config is not None:
        (tmp_path / "config.json").write_text(json.dumps(config))
        argv += ["--config", str(tmp_path / "config.json")]
    assert edgekit(argv) == 0, capsys.readouterr().err
    # The id it printed, not the registry's first: a test may provision several boards.
    device_id = json.loads(capsys.readouterr().out)["devices"][0]["device_id"]
    return fleet_home / "registry.sqlite", device_id


def run_service(registry_path, keys, host, port, setup=None, on_alarm=None,
                **service_options):
    """Start the fleet service on a thread: (held, stop, thread), held["svc"] once it runs.
    `setup(svc)` runs before it connects (a test's hook on what it publishes); `on_alarm` is
    what `fleet serve` gives its Ingest (an AlarmSink: the log line and the webhook)."""
    stop, held = threading.Event(), {}

    def serve():
        reg = Registry(registry_path)       # the service thread's own connection
        ingest = Ingest(reg, keys.signer(C.ROLE_OPERATOR, PASS),
                        lambda: keys.next_seq(C.ROLE_OPERATOR), on_alarm=on_alarm)
        svc = FleetService(ingest, host, port, **service_options)
        svc.client.reconnect_delay_set(0.2, 1)
        if setup is not None:
            setup(svc)
        held["svc"] = svc
        svc.run(stop)
        reg.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return held, stop, thread


def diag(board, capsys):
    code = edgekit(["command", board.url, "diag", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)["result"]


def stored(path, device_id):
    with Registry(path) as reg:
        return [r["journal_seq"] for r in store.telemetry(reg, device_id)
                if r["idx"] == 0]


def step_until(clock, pred, what, step_s=2, limit_s=60.0, show=lambda: ""):
    """Advance the board's paused clock a little at a time (its network task runs every
    poll_s) until `pred()` holds in wall time."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if pred():
            return
        clock.advance(step_s)
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}: {show()}")


class Settled:
    """True once the device's last ACK said nothing is left and nothing more came for a few
    network polls (an ACK for an older push can say 0 before the newest push is acked)."""

    def __init__(self, ingest, device_id, polls=3):
        self.ingest, self.device_id, self.polls = ingest, device_id, polls
        self.seen, self.quiet = None, 0

    def __call__(self):
        received = self.ingest.counts["received"]
        self.quiet = self.quiet + 1 if received == self.seen else 0
        self.seen = received
        return self.ingest.pending.get(self.device_id) == 0 and self.quiet >= self.polls


class Spy:
    """A second service-user client that records what crosses the broker for one device."""

    def __init__(self, broker, device_id):
        self.up, self.down = queue.Queue(), queue.Queue()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="spy",
                             clean_session=True)
        self.c.username_pw_set(SERVICE_USER)
        self.c.on_message = lambda c, u, m: (self.up if m.topic.endswith("/up")
                                             else self.down).put(bytes(m.payload))
        subscribed = threading.Event()
        self.c.on_subscribe = lambda *args: subscribed.set()
        self.c.connect(broker.host, broker.port)
        self.c.loop_start()
        self.c.subscribe(topics.up(device_id), 1)   # the service user may read up-topics only
        # A paused board runs a report period in milliseconds once its clock moves: a spy
        # still subscribing would miss what it published.
        if not subscribed.wait(10):
            raise AssertionError("the spy's subscription was not acknowledged by the broker")

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def answers_of(spy, ring, msg_type, into):
    """A step_until predicate: the `msg_type` bodies the device published (seen by `spy`,
    verified with the device's keyring `ring`) are collected into `into`; true once one is."""
    def answered():
        while not spy.up.empty():
            msg = messages.open_body(spy.up.get(), ring)
            if msg.type == msg_type:
                into.append(msg)
        return bool(into)
    return answered
