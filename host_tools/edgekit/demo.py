"""`make demo`: a field technician's day on emulated boards, narrated step by step.

Everything runs in a throwaway EDGEKIT_HOME with in-process emulated boards, and nothing is
left running afterwards. Outputs (registry export, public sensor register) land in out/demo/.
"""
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from edgekit import catalog as C
from edgekit.cli import main as edgekit
from edgekit.paths import ROOT

PASSPHRASE = "demo passphrase, never use in the field"
DAY = 86400
OUT = ROOT / "out" / "demo"


class Narrator:
    def __init__(self):
        self.t0 = time.monotonic()
        self.n = 0

    def step(self, text):
        self.n += 1
        print(f"\n[{time.monotonic() - self.t0:5.1f}s] Step {self.n}: {text}", flush=True)

    def say(self, text):
        print(f"         {text}", flush=True)


def run_cli(*argv):
    """Run an edgekit command in-process; return (exit code, stdout)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = edgekit(list(argv))
    return code, out.getvalue()


def household_day(target):
    """A day of water use: morning showers, a washing machine, evening cooking, garden."""
    clock, world = target.clock, target.world
    start = clock.now()
    for hour, lpm, minutes in [(6, 9, 12), (7, 9, 10), (9, 12, 25), (12, 4, 10), (18, 4, 20),
                               (19, 18, 30), (21, 9, 8)]:
        clock.advance(start + hour * 3600 - clock.now())
        world.set(flow_lpm=lpm)
        clock.advance(minutes * 60)
        world.set(flow_lpm=0)
    clock.advance(start + DAY + 120 - clock.now())


def main():
    home = Path(tempfile.mkdtemp(prefix="edgekit-demo-"))
    os.environ["EDGEKIT_HOME"] = str(home)
    os.environ["EDGEKIT_KEY_PASSPHRASE"] = PASSPHRASE
    OUT.mkdir(parents=True, exist_ok=True)
    say = Narrator()
    from edgekit.emu import Emulator
    from edgekit.hil.targets import BoardSpec, EmulatedTarget

    say.step("the fleet owner creates the fleet's keys (fleet root, firmware, operator)")
    code, out = run_cli("keys", "init", "--json")
    assert code == 0, out
    for row in json.loads(out)["keys"]:
        say.say(f"{row['role']:9} key {row['kid']}")
    say.say(f"keys in {home / 'keys'} (encrypted PKCS#8, mode 0600)")

    with Emulator(state_dir=home / "emu") as emu:
        say.step("two factory-fresh meters are plugged in (emulated ESP32 and RP2040, "
                 "115200 baud links)")
        boards = [EmulatedTarget(emu, BoardSpec(f"emu:{b}:water_meter"), time_mode="paused")
                  for b in ("esp32", "rp2040")]
        for t in boards:
            say.say(f"{t.board:7} at {t.url}")

        say.step("the technician provisions both at once")
        started = time.monotonic()
        code, out = run_cli("provision", "--ports", *[t.url for t in boards], "--kind",
                            "water_meter", "--site", "demo-street", "--json")
        report = json.loads(out)
        assert code == 0, report
        for d in report["devices"]:
            say.say(f"{d['device_id']} ({d['board']}) provisioned in {d['seconds']} s")
        say.say(f"both done in {time.monotonic() - started:.1f} s wall time")

        from edgekit.hil.devices import Device
        from edgekit.keys.store import KeyStore
        from edgekit.protocol import messages
        from edgekit.protocol.session import Session
        from edgekit.registry.db import Registry
        keys = KeyStore(home / "keys")
        registry = Registry()
        devices = []
        for t, d in zip(boards, report["devices"]):
            row = registry.get(d["device_id"])
            ring = messages.Keyring()
            ring.add(bytes(row["public_key"]), C.ROLE_DEVICE)
            transport = t.transport()
            session = Session(transport, signer=keys.signer("operator", PASSPHRASE),
                              device_keys=ring, timeout=5)
            session.next_seq = lambda: keys.next_seq(C.ROLE_OPERATOR)
            devices.append(Device(t, transport, session, row))
        meter, meter2 = devices
        meter.session.request(C.TIME_SYNC, {C.K_TIME: 1767225600}, expect=C.TIME)

        say.step("a simulated day of household water use passes (virtual time)")
        started = time.monotonic()
        household_day(boards[0])
        say.say(f"24 h simulated in {time.monotonic() - started:.1f} s; the world model says "
                f"{boards[0].world.snapshot()['litres_fwd']:.1f} L flowed")

        say.step("the gateway collects signed telemetry and verifies every frame")
        rows, more, msg = meter.fetch_telemetry()
        packs = meter.drain_telemetry()
        hourly = [(r[C.SENML_V]) for p in packs for r in p if r.get(C.SENML_N) == "consumption"]
        total = [r[C.SENML_V] for p in packs for r in p if r.get(C.SENML_N) == "volume"]
        say.say(f"{len(packs)} hourly packs, each frame signed by {meter.id} "
                f"(verified: {msg.role == C.ROLE_DEVICE})")
        say.say("litres per hour: " + " ".join(f"{v:.0f}" for v in hourly))
        say.say(f"meter total {total[-1]} L, world model "
                f"{boards[0].world.snapshot()['litres_fwd']:.1f} L")

        say.step("a pipe bursts under the street: the meter raises the alarm by itself")
        meter.session.events.clear()
        boards[0].world.set(burst_lpm=150)
        boards[0].clock.advance(8 * 60)
        deadline = time.monotonic() + 5
        pushed = []
        while not pushed and time.monotonic() < deadline:
            msg = meter.session.receive(timeout=0.5)
            for m in list(meter.session.events) + ([msg] if msg else []):
                if m.type == C.EVENT and m.payload[C.K_NAME] == "burst":
                    pushed.append(m)
        for m in pushed[:1]:
            ev = m.payload
            say.say(f"EVENT {ev[C.K_NAME]} active={ev[C.K_ACTIVE]}, "
                    f"{ev[C.K_DURATION]} s so far: pushed unsolicited, signed by "
                    f"{m.sender} (verified: {m.role == C.ROLE_DEVICE})")
        if not pushed:
            say.say("no burst event arrived (fetch it with EVENT_FETCH)")

        say.step("the operator closes the valve remotely (a signed command)")
        result = meter.command("valve", open=False)
        say.say(f"meter answers: valve {result['valve']}; world model valve: "
                f"{'open' if boards[0].world.snapshot()['outputs']['valve'] else 'closed'}, "
                f"flow now {boards[0].world.snapshot()['flow_now_lpm']} L/min")

        say.step("a replayed 'open valve' frame captured by an attacker is refused")
        seq, body = meter.session.build(C.COMMAND, {C.K_NAME: "valve",
                                                    C.K_ARGS: {"open": True}})
        meter.session.exchange(seq, body)
        meter.command("valve", open=False)
        meter.session.send_body(body)
        answer = meter.session.receive(timeout=5)
        say.say(f"device answers {C.error_name(answer.payload[C.K_CODE])}; valve stays "
                f"{'open' if boards[0].world.snapshot()['outputs']['valve'] else 'closed'}")

        for d in devices:
            d.close()

    say.step("the technician records where each meter was installed")
    for (dev_id, where) in zip([d["device_id"] for d in report["devices"]],
                               ["52.3731,4.8922", "52.3702,4.8952"]):
        code, _ = run_cli("devices", "set", dev_id, "--location", where, "--owner",
                          "City water utility", "--purpose", "billing and leak detection")
        assert code == 0
        say.say(f"{dev_id} at {where}")

    say.step("the registry and the public sensor register")
    code, out = run_cli("devices", "list")
    for line in out.strip().splitlines():
        say.say(line)
    for fmt in ("csv", "geojson"):
        target = OUT / f"sensor-register.{fmt}"
        code, _ = run_cli("devices", "export", "--format", fmt, "--out", str(target))
        say.say(f"public register written: {target.relative_to(ROOT)}")
    print(f"\nDemo finished in {time.monotonic() - say.t0:.0f} s; no board left running.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
