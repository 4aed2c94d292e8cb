"""OTA over MQTT (SPEC 13.7) on an emulated ESP32 water meter, real time: the deflated
water-meter bundle pushed through the embedded broker (amqtt, in this process) with
`edgekit ota push --via fleet`'s engine, against the same bundle over the paced 115200
link. Prints goodput in bytes/s, the device's bodies taken per busy network poll (the
device drains the broker while a transfer runs; without that it took 4 per poll_s), and
what was resent. Figures are ratios and counts, never asserts.

    python bench/bench_ota_mqtt.py [--poll-s 5]
    python bench/bench_ota_mqtt.py --no-serial --stage-only --rom frozen32 --heap-scale 0.7
                    # the networked meter on the board-accurate VM with 30% of the ESP32's
                    # heap kept free (the headroom test's scale): its heap and net.oom too
"""
import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

from edgekit import catalog as C
from edgekit.emu import Emulator
from edgekit.fleet import netconfig
from edgekit.fleet.broker import EmbeddedBroker
from edgekit.fleet.device_link import FleetLink
from edgekit.fleet.service import parse_url
from edgekit.hil.devices import TEST_PASSPHRASE, HilFleet, provision
from edgekit.hil.targets import BoardSpec, EmulatedTarget
from edgekit.ota import bundle as bundle_mod
from edgekit.ota.push import Pusher
from edgekit.ota.push_resume import stage
from edgekit.ota.sign import sign_with_keystore
from edgekit.provision import flow


def provision_networked(target, fleet, broker, poll_s):
    from edgekit.hil.devices import Device
    from edgekit.protocol import messages
    from edgekit.protocol.session import Session
    transport = target.transport()
    session = Session(transport, timeout=10)
    row = flow.provision(session, fleet.fleet, fleet.registry, "water_meter", "bench",
                         net=netconfig.build(broker.url, {"poll_s": poll_s}))
    ring = messages.Keyring()
    ring.add(bytes(row["public_key"]), C.ROLE_DEVICE)
    session.device_keys = ring
    session.signer = fleet.fleet.operator_signer
    session.next_seq = lambda: fleet.keystore.next_seq(C.ROLE_OPERATOR)
    return Device(target, transport, session, row)


def net_stats(dev):
    msg = dev.session.request(C.COMMAND, {C.K_NAME: "diag", C.K_ARGS: {}}, timeout=10,
                              expect=C.COMMAND_RESULT)
    return msg.payload[C.K_RESULT]["net"]


def wait_connected(dev, limit_s=30):
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if net_stats(dev)["connected"]:
            return
        time.sleep(0.5)
    raise SystemExit("bench: the board did not connect to the broker")


def timed(pusher):
    t0 = time.monotonic()
    result = pusher.run()
    if result["status"] != "installed":
        raise SystemExit(f"bench: update did not install: {result}")
    return time.monotonic() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--poll-s", type=int, default=5, help="the device's poll_s (default 5)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="the pushes' progress on stderr")
    ap.add_argument("--no-serial", action="store_true", help="skip the cable's figure")
    ap.add_argument("--stage-only", action="store_true",
                    help="stop once the update is staged (no install, no trial: a full "
                         "image does not run on a frozen board at its heap, docs/ota.md 8)")
    ap.add_argument("--rom", choices=("mpy", "frozen32"), default="mpy",
                    help="the networked board's VM (frozen32: the board-accurate 32-bit one)")
    ap.add_argument("--heap-scale", type=float, default=None,
                    help="the networked board's share of its heap (the headroom test: 0.7)")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-ota-mqtt-"))
    fleet = HilFleet(tmp)
    bundle = sign_with_keystore(bundle_mod.build("esp32", "water_meter", "1.1.0", seq=10),
                                fleet.keystore, TEST_PASSPHRASE)
    out = {"stream_bytes": len(bundle.stream()), "poll_s": args.poll_s}
    with Emulator() as emu, EmbeddedBroker() as broker:
        # amqtt logs a traceback whenever a device PUBACKs later than its fixed 5 s (a
        # device reads the broker every poll_s): the message was delivered. Figures only.
        logging.getLogger("amqtt").setLevel(logging.CRITICAL)
        # The cable: the paced 115200 link, for the ratio.
        show = (lambda e: print(e, file=sys.stderr, flush=True)) if args.verbose else None
        if not args.no_serial:
            serial = EmulatedTarget(emu, BoardSpec("emu:esp32:water_meter"), time_mode="real")
            dev = provision(serial, fleet, "water_meter")
            p = Pusher(dev.session, bundle, dev.public_key, progress=show)
            timed(p)
            out["serial_goodput"] = p.stats["new_bytes"] / p.stats["seconds"]
            dev.close()
            serial.close()

        if args.rom == "frozen32":
            from edgekit.frozen import unixvm
            ok, why = unixvm.status()
            if not ok:
                unixvm.build()
        sized = {} if args.heap_scale is None else {"heap_scale": args.heap_scale}
        target = EmulatedTarget(emu, BoardSpec("emu:esp32:water_meter"), time_mode="real",
                                rom=args.rom, **sized)
        dev = provision_networked(target, fleet, broker, args.poll_s)
        wait_connected(dev)
        before = net_stats(dev)
        link = FleetLink(fleet.registry, dev.id, fleet.keystore, fleet.signer("operator"),
                         parse_url(broker.url), min_timeout=args.poll_s + 7)
        p = Pusher(link.session, bundle, link.public_key, progress=show)
        t0 = time.monotonic()
        stage(p, patience_s=60)
        diag = dev.command("diag")      # before the install's reboot clears the counters
        after = diag["net"]
        if not args.stage_only:
            p.install()
            if p.wait_result()["status"] != "installed":
                raise SystemExit("bench: the update over MQTT did not install")
        total = time.monotonic() - t0
        link.close()
        if args.verbose:
            print(before, after, link.session.stats, file=sys.stderr)
        dev.close()
        target.close()
    s = p.stats
    taken = after["received"] - before["received"]
    busy = max(1, after["busy_polls"] - before["busy_polls"])
    out.update(mqtt_goodput=s["new_bytes"] / s["seconds"], sent_bytes=s["sent_bytes"],
               resent_bytes=s["resent_bytes"], chunks=s["chunks"], transfer_s=s["seconds"],
               offer_to_confirmed_s=total, bodies_taken=taken,
               busy_polls=after["busy_polls"] - before["busy_polls"],
               per_busy_poll=taken / busy, rom=args.rom, heap_scale=args.heap_scale,
               heap_free=diag.get("heap_free"), net_oom=after["oom"],
               task_errors=diag.get("task_errors"), max_frame=link.session.max_frame)
    shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(out, sort_keys=True))
        return 0
    print(f"water-meter bundle, deflated: {out['stream_bytes']} B of stream")
    print(f"OTA over MQTT (embedded broker, device poll_s {args.poll_s}): "
          f"{out['mqtt_goodput']:.0f} B/s goodput over {out['transfer_s']:.1f} s of transfer, "
          f"{out['chunks']} chunks, sent {out['sent_bytes']} B (resent "
          f"{out['resent_bytes']} B); offer to "
          f"{'staged' if args.stage_only else 'confirmed'} {total:.1f} s")
    print(f"bodies up to {out['max_frame']} B; the device ({args.rom} VM, heap scale "
          f"{args.heap_scale or 'default'}): {out['heap_free']} B free after the transfer, "
          f"{out['net_oom']} bodies lost to memory, {out['task_errors']} task errors")
    chunk = out["stream_bytes"] / max(1, out["chunks"])
    print(f"the device took {taken} bodies in {out['busy_polls']} busy polls = "
          f"{out['per_busy_poll']:.1f} per poll (4 per {args.poll_s} s poll without draining: "
          f"{4 * chunk / args.poll_s:.0f} B/s at most with these {chunk:.0f}-byte chunks)")
    if "serial_goodput" in out:
        print(f"OTA over the paced 115200 cable: {out['serial_goodput']:.0f} B/s goodput; "
              f"MQTT = x{out['mqtt_goodput'] / out['serial_goodput']:.2f} of it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
