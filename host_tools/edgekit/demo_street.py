"""`make demo`'s networked street: boards in the street report over their network, not a
cable. An embedded MQTT broker, three more boards provisioned with it (a meter, an air
node, a bin), `fleet serve` storing what they publish and raising the alarm of a burst main
on its own, and a signed update that reaches the meter over the air (`ota push --via
fleet`); the same signed bodies as on the cable (docs/fleet.md).
"""
import json
import threading
import time

KINDS = ("water_meter", "env_sensor", "smart_bin")
SPEED = 600                 # virtual time: a simulated hour every 6 s
# Each kind's shortest push period (its schema's minimum), so the street reports within a
# few seconds of wall time: a meter pushes daily by default, a bin hourly.
CONFIG = {"water_meter": "report_s = 300\n", "env_sensor": "push_s = 300\n",
          "smart_bin": "report_s = 600\n"}


class _Lines:
    """The alarm sink's output as narrated lines."""

    def __init__(self, say):
        self.say, self.lines = say, []

    def write(self, text):
        for line in text.splitlines():
            if line.strip():
                self.lines.append(line)
                self.say(line)

    def flush(self):
        pass


def _serve(home, broker, passphrase, alarms, stop, held):
    from edgekit import catalog as C
    from edgekit.fleet.ingest import Ingest
    from edgekit.fleet.service import AlarmSink, FleetService
    from edgekit.keys.store import KeyStore
    from edgekit.registry.db import Registry
    registry = Registry(home / "registry.sqlite")       # the service thread's own connection
    keys = KeyStore(home / "keys").require()
    ingest = Ingest(registry, keys.signer(C.ROLE_OPERATOR, passphrase),
                    lambda: keys.next_seq(C.ROLE_OPERATOR), on_alarm=AlarmSink(out=alarms))
    held["ingest"] = ingest
    held["service"] = service = FleetService(ingest, broker.host, broker.port,
                                             client_id="demo-fleet")
    service.run(stop)
    registry.close()


def _stored(device_ids):
    from edgekit.registry import telemetry as store
    from edgekit.registry.db import Registry
    with Registry() as reg:
        return {d: len(store.telemetry(reg, d)) for d in device_ids}


def _update_over_the_air(say, home, board, passphrase, run_cli, broker, meter, device_id):
    from edgekit.keys.store import KeyStore
    from edgekit.ota import bundle as ota_bundle
    from edgekit.ota.sign import sign_with_keystore
    say.step("release day in the street: the networked meter takes a signed update over the "
             "air, chunks at its own pace through the broker")
    apps = ota_bundle.default_sources("water_meter", app_only=True)
    update = sign_with_keystore(ota_bundle.build(board, "water_meter", "1.0.1", seq=2,
                                                 sources=apps, deadline=30),
                                KeyStore(home / "keys"), passphrase)
    path = home / "street-update.ekota"
    update.save(path)
    meter.set(burst_lpm=0)
    # Real time for the trial: its deadline runs on the device clock, which virtual time
    # would skip through between two of the host's messages.
    meter.set_time_mode("real")
    started = time.monotonic()
    code, out = run_cli("ota", "push", "--via", "fleet", device_id, str(path), "--broker",
                        broker.url, "--json")
    summary = [json.loads(line) for line in out.splitlines()
               if line.startswith("{") and '"summary"' in line]
    if code != 0 or not summary:
        raise SystemExit(f"demo: the update over the air did not install: {out[-2000:]}")
    result = summary[-1]
    stats = result["stats"]
    say.say(f"{device_id}: update {result.get('running')} {result['status']} over MQTT in "
            f"{time.monotonic() - started:.1f} s ({stats['sent_bytes']} of "
            f"{stats['stream_bytes']} bytes sent), booted in trial mode and confirmed")


def networked_street(say, emu, home, board, passphrase, run_cli):
    """Narrated: returns the device ids of the networked boards."""
    from edgekit.fleet.broker import EmbeddedBroker
    say.step("the street goes on the network: an MQTT broker, the fleet service, and three "
             "more boards that report over Wi-Fi, not a cable")
    broker = EmbeddedBroker().start()
    stop, held = threading.Event(), {}
    alarms = _Lines(say.say)
    thread = threading.Thread(target=_serve, args=(home, broker, passphrase, alarms, stop,
                                                   held), daemon=True)
    boards = []
    try:
        say.say(f"broker {broker.url} (embedded; Mosquitto in a deployment: docs/fleet.md)")
        devices = {}
        for kind in KINDS:
            config = home / f"street-{kind}.toml"
            config.write_text(CONFIG[kind])
            b = emu.start(board, kind=kind, time="virtual", speed=SPEED)
            boards.append(b)
            code, out = run_cli("provision", b.url, "--kind", kind, "--site", "demo-street",
                                "--broker", broker.url, "--config", str(config), "--json")
            if code != 0:
                raise SystemExit(f"demo: provisioning the networked {kind} failed: {out}")
            devices[kind] = json.loads(out)["devices"][0]["device_id"]
            say.say(f"{devices[kind]:16} ({kind}) provisioned with the broker in its network "
                    "config")
        thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
                "service" in held and held["service"].connected.is_set()):
            time.sleep(0.05)
        meter = boards[KINDS.index("water_meter")]
        meter.set(flow_lpm=6)
        started = time.monotonic()
        counts = {}
        while time.monotonic() - started < 60:
            counts = _stored(devices.values())
            if all(counts.values()):
                break
            time.sleep(0.5)
        say.say(f"in {time.monotonic() - started:.0f} s (about "
                f"{(time.monotonic() - started) * SPEED / 3600:.1f} simulated hours) the "
                "service verified, stored and acknowledged:")
        for kind, device_id in devices.items():
            say.say(f"  {device_id:16} {counts.get(device_id, 0):4} records ({kind})")
        say.step("a main bursts under the networked meter: the alarm reaches the fleet "
                 "service through the broker, with nobody at a cable")
        meter.set(burst_lpm=150)
        started = time.monotonic()
        while time.monotonic() - started < 60 and not any(
                "burst" in line for line in alarms.lines):
            time.sleep(0.2)
        if not any("burst" in line for line in alarms.lines):
            say.say("no burst alarm reached the service within 60 s (see `edgekit monitor "
                    "--via fleet`)")
        _update_over_the_air(say, home, board, passphrase, run_cli, broker, meter,
                             devices["water_meter"])
        stats = held["ingest"].stats()
        c = stats["counts"]
        say.say(f"the service: received {c['received']}, accepted {c['accepted']}, stored "
                f"{c['records_stored']} records and {c['events_stored']} events, sent "
                f"{c['acks_sent']} acks; dropped {sum(stats['dropped'].values())}")
        return list(devices.values())
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(10)
        for b in boards:
            b.stop()
        broker.stop()
