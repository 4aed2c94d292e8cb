"""`edgekit flash`: edgekit firmware onto one board, or a tray of them in parallel.

    edgekit flash /dev/ttyUSB0 --board esp32 --kind water_meter
    edgekit flash --ports auto --board rp2040 --kind env_sensor --runtime RPI_PICO_W.uf2 --json
"""
import json
import sys
import time

from edgekit import appschema
from edgekit.errors import EdgekitError
from edgekit.flash import flow, image as image_mod
from edgekit.transport.port_runner import (add_parallel_option, exit_status, run_per_port,
                                           tally)
from edgekit.transport.ports import resolve_all
from edgekit.ui import Progress


def build_image(args):
    if args.bundle:
        img = image_mod.from_bundle(args.bundle, args.board)
        if img.kind != args.kind:
            raise EdgekitError(f"{args.bundle} is a {img.kind} bundle, not {args.kind}: pass "
                               f"--kind {img.kind} or build the {args.kind} bundle")
        return img
    return image_mod.build(args.board, args.kind, args.version)


def flash_all(ports, img, progress, wipe=False, ignore_heap=False, hello=True, runtime=None,
              parallel=8):
    """Flash every port (in parallel); one result dict per port, in order."""
    def one(port):
        return flow.flash(port, img, wipe=wipe, ignore_heap=ignore_heap, hello=hello,
                          runtime=runtime,
                          progress=lambda step, detail="": progress(port, step, detail))

    return run_per_port(ports, one, parallel, progress)


def cmd_flash(args):
    ports = resolve_all(([args.port] if args.port else []) + (args.ports or []))
    if not ports:
        raise EdgekitError("name the board's port (e.g. /dev/ttyUSB0), or --ports auto|PORT...")
    appschema.check_kind(args.kind)
    board_def = image_mod.bundle_mod.load_board(args.board)
    uf2 = (board_def.get("runtime_image") or {}).get("method") == "uf2"
    if args.runtime and len(ports) > 1 and uf2:
        raise EdgekitError("a UF2 runtime goes to one BOOTSEL drive at a time: write it board "
                           "by board, then flash the tray without --runtime")
    started = time.monotonic()
    img = build_image(args)              # once, before touching any board
    progress = Progress(ports, stream=sys.stderr, quiet=args.json)
    results = flash_all(ports, img, progress.update, wipe=args.wipe,
                        ignore_heap=args.ignore_heap, hello=not args.no_hello,
                        runtime=args.runtime, parallel=args.parallel)
    progress.finish()
    summary = {"board": img.board, "kind": img.kind, "image": img.describe(),
               "devices": results, **tally(results),
               "seconds": round(time.monotonic() - started, 2)}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for r in results:
            if r["ok"]:
                print(f"{r['port']}: {img.kind} {img.version} on {img.board}: {r['sent']} "
                      f"files sent, {r['skipped']} unchanged, {r['removed']} removed, "
                      f"{r['seconds']} s")
                fz = r.get("frozen")
                if fz:
                    print(f"  firmware frozen in the board's image: {fz['version']}, "
                          f"{fz['frozen_modules']} modules; installed only what it does not "
                          "freeze")
                else:
                    print("  firmware from the filesystem (/lib): no frozen firmware found")
                if not r["heap"]["fits"]:
                    print(f"  warning: {r['heap']['problem']}")
            else:
                print(f"{r['port']}: FAILED: {r['error']}")
        print(f"{summary['ok']} flashed, {summary['failed']} failed, {summary['seconds']} s")
    return exit_status(results)


def register(subparsers):
    p = subparsers.add_parser(
        "flash", help="install the edgekit firmware on bare boards (factory state)",
        description="Install the edgekit firmware for a board and device kind over the "
                    "MicroPython REPL (optionally MicroPython itself first), verify every "
                    "file's SHA-256 on the device, skip files already there, and leave the "
                    "board in factory state for `edgekit provision`. Rerun after an "
                    "interruption to finish. See docs/flashing.md.")
    p.add_argument("port", nargs="?", help="serial port, sn:SERIAL, loc:USB-LOCATION, "
                                           "socket://HOST:PORT or emu:ID")
    p.add_argument("--ports", nargs="+", metavar="PORT",
                   help="several boards at once (in parallel); `auto` = every USB board")
    p.add_argument("--board", required=True, help="board definition (boards/BOARD.json)")
    p.add_argument("--kind", required=True, choices=appschema.KINDS)
    p.add_argument("--version", help="firmware version to build (default: the tree's)")
    p.add_argument("--bundle", metavar="FILE",
                   help="install this `edgekit ota build` bundle instead of building one")
    p.add_argument("--runtime", metavar="IMAGE",
                   help="write MicroPython first: a .bin (ESP32 family, esptool) or a .uf2 "
                        "(RP2040, BOOTSEL drive)")
    p.add_argument("--wipe", action="store_true",
                   help="erase everything else on the board, a provisioned identity included")
    p.add_argument("--ignore-heap", action="store_true",
                   help="install even if the image cannot run from the filesystem within "
                        "the board's heap")
    p.add_argument("--no-hello", action="store_true",
                   help="do not wait for the flashed firmware to answer HELLO")
    add_parallel_option(p, 8, "boards")
    p.add_argument("--json", action="store_true", help="one JSON report on stdout")
    p.set_defaults(func=cmd_flash)
