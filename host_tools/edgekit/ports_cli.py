"""`edgekit ports`: which serial ports there are and what answers on each, without keys.

    edgekit ports                       every USB serial port and every emulated board
    edgekit ports /dev/ttyUSB0 emu:esp32-1 --json

For each port: an edgekit device (its state: factory, provisioned with its device id, or in
an update's trial), a plain MicroPython board (the REPL's banner), or nothing. The probe is an
unsigned HELLO (every edgekit device answers it, provisioned or not: SPEC 6), then, when
nothing answered, Ctrl-B, which makes a MicroPython REPL print its banner; a provisioned
device takes neither as a command (its REPL is locked: SPEC 12). No key is read.
"""
import json
import re
import sys
import time

from edgekit import catalog as C
from edgekit.errors import EdgekitError
from edgekit.protocol.session import Session
from edgekit.transport import port_runner
from edgekit.transport.ports import describe
from edgekit.transport.serial_link import open_transport

_BANNER = re.compile(rb"MicroPython [^\r\n]*\r?\n")


def _emulated_ports():
    """(port, note) of every board the emulator daemon runs; none when it is not running."""
    try:
        from edgekit.emu.control import Control
        ctl = Control()
        if not ctl.running():
            return []
        return [(f"emu:{i['id']}", f"emulated {i['board']}") for i in ctl.request("list")]
    except (EdgekitError, OSError):
        return []


def probe(port, timeout=1.0):
    """What answers on `port`: a dict with "answers" = edgekit / micropython / nothing."""
    transport = open_transport(port)
    try:
        session = Session(transport, timeout=timeout, retries=0)
        try:
            caps = session.hello(timeout=timeout).payload
        except EdgekitError:
            caps = None
        if caps is not None:
            return {"answers": "edgekit", "state": caps.get(C.K_STATE),
                    "device_id": caps.get(C.K_DEVICE_ID), "kind": caps.get(C.K_KIND),
                    "board": caps.get(C.K_BOARD), "firmware": caps.get(C.K_FW),
                    "key_epoch": caps.get(C.K_EPOCH)}
        transport.write(b"\r\x02")          # friendly REPL: a MicroPython prints its banner
        seen = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen += transport.read(0.1)
            if _BANNER.search(seen) and seen.rstrip().endswith(b">>>"):
                break
        banner = _BANNER.search(seen)
        if banner:
            return {"answers": "micropython",
                    "banner": banner.group(0).decode(errors="replace").strip()}
        return {"answers": "nothing"}
    finally:
        transport.close()


def _summary(row):
    what = row.get("answers")
    if what == "edgekit":
        if row.get("state") == "factory":
            return f"edgekit, factory state ({row.get('board')}, firmware {row.get('firmware')})"
        return (f"edgekit {row.get('device_id')} ({row.get('kind')}, {row.get('state')}, "
                f"firmware {row.get('firmware')})")
    if what == "micropython":
        return f"plain MicroPython: {row['banner']}"
    if what == "nothing":
        return "nothing answered"
    return f"cannot open: {row.get('error')}"


def cmd_ports(args):
    if args.ports:
        targets = [(p, "") for p in args.ports]
    else:
        targets = [(r["port"], r["vendor"] or "") for r in describe()] + _emulated_ports()
    notes = dict(targets)

    def one(port):
        return probe(port, args.timeout)

    results = port_runner.run_per_port([p for p, _ in targets], one, args.parallel)
    for r in results:
        r["note"] = notes.get(r["port"], "")
    if args.json:
        print(json.dumps({"ports": results}, indent=2))
    elif not results:
        print("no serial ports found (USB) and no emulated board running; name a port: "
              "edgekit ports /dev/ttyUSB0", file=sys.stderr)
    else:
        width = max(len(r["port"]) for r in results)
        for r in results:
            note = f"  [{r['note']}]" if r["note"] else ""
            print(f"{r['port']:<{width}}  {_summary(r)}{note}")
    return 0


def register(subparsers):
    p = subparsers.add_parser(
        "ports", help="list serial ports and what answers on each (no keys needed)",
        description="Probe each USB serial port and each emulated board (or the ports named) "
                    "with an unsigned HELLO, then Ctrl-B: an edgekit device in factory "
                    "state, a provisioned one (its device id), plain MicroPython (its "
                    "banner), or nothing. No key is read; nothing is written to a device.")
    p.add_argument("ports", nargs="*", metavar="PORT",
                   help="ports to probe (default: every USB serial port and emulated board)")
    p.add_argument("--timeout", type=float, default=1.0, metavar="S",
                   help="seconds to wait for each answer (default 1)")
    port_runner.add_parallel_option(p, 8)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_ports)
