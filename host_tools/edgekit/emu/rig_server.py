"""`edgekit emu rig`: the bench's relay board, for emulated boards reached only as serial ports.

A bench drives a board under test through a rig controller (docs/hil.md): relays on the
supply and the reset line, a strap, pulse generators and DACs for the sensors. For a test run
that must see emulated boards exactly as a bench sees real ones (a serial port and a rig,
nothing else), this process plays that controller: it speaks the rig line protocol on a TCP
port (`socket://127.0.0.1:PORT`, what pyserial opens like a serial server) and turns each
line into a request to the emulator's control socket:

    SET   <id>.<quantity> <value>   -> world set (flow_lpm, tamper, maint_strap, ...)
    PULSE <id>.power <seconds>      -> power cut, power back after <seconds>
    PULSE <id>.reset <seconds>      -> reset line pulled (a hard reset)

each answered `OK` or `ERR <text>`. It writes one rig file per board (DIR/<id>.rig.toml)
naming its channels, the board definition and the kind whose world it stages, so that
`pytest hil_tests --board serial:PTY --rig DIR/<id>.rig.toml` needs nothing else.

TCP rather than a pty: several pytest workers may hold a rig connection at once, and one
pty has one reader.
"""
import json
import signal
import socketserver
import sys
import threading
from pathlib import Path

from edgekit.emu.control import Control
from edgekit.emu.supervisor import EmuError

_LINES = ("power", "reset")
_MAX_LINE = 256


def parse(line):
    """(verb, board id, name, value text) of one protocol line; ValueError names the fault."""
    parts = line.split()
    if len(parts) != 3 or parts[0] not in ("SET", "PULSE"):
        raise ValueError("expected `SET <channel> <value>` or `PULSE <channel> <seconds>`")
    verb, channel, value = parts
    board_id, dot, name = channel.rpartition(".")
    if not dot or not board_id or not name:
        raise ValueError(f"channel {channel!r}: this rig's channels are <board id>.<name>")
    return verb, board_id, name, value


class RigController:
    """Maps rig channels of the boards `board_ids` onto the supervisor's requests."""

    def __init__(self, board_ids, control=None):
        self.ctl = control or Control()
        self.board_ids = set(board_ids)
        self.lock = threading.Lock()        # one request at a time, as one relay board

    def handle(self, line):
        try:
            verb, board_id, name, value = parse(line)
            if board_id not in self.board_ids:
                raise ValueError(f"no board {board_id!r} on this rig (it serves "
                                 f"{', '.join(sorted(self.board_ids))})")
            with self.lock:
                self._apply(verb, board_id, name, value)
            return "OK"
        except (ValueError, EmuError) as exc:
            return "ERR " + " ".join(str(exc).split())

    def _apply(self, verb, board_id, name, value):
        if verb == "SET":
            if name in _LINES:
                raise ValueError(f"{name} is a line: PULSE it")
            self.ctl.request("set", board_id=board_id, values={name: value})
            return
        try:
            seconds = float(value)
        except ValueError:
            raise ValueError(f"PULSE length {value!r} must be a number of seconds") from None
        if not 0 <= seconds <= 3600:
            raise ValueError(f"PULSE length {seconds} s must be within 0..3600")
        if name == "power":
            self.ctl.request("powercut", board_id=board_id, off=seconds)
        elif name == "reset":
            self.ctl.request("reset", board_id=board_id, cause="hard")
        else:
            raise ValueError(f"{name!r} is not a line of this rig (power, reset)")


def rig_file(info, world, url):
    """The TOML rig description of one emulated board served at `url`."""
    bid = info["id"]
    names = sorted(set(world.get("values", {})) | {"maint_strap"})
    out = ["# written by `edgekit emu rig`: the emulator plays this board's bench rig",
           "[rig]", f'port = "{url}"', f'board = "{info["board"]}"']
    if info.get("kind"):
        out.append(f'kind = "{info["kind"]}"')
    out += ["", "[stimuli]"]
    out += [f'{n} = {{ channel = "{bid}.{n}" }}' for n in names]
    out += ["", "[lines]"] + [f'{n} = "{bid}.{n}"' for n in _LINES]
    return "\n".join(out) + "\n"


class _Handler(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            raw = self.rfile.readline(_MAX_LINE + 1)
            if not raw:
                return
            if len(raw) > _MAX_LINE:
                self.wfile.write(b"ERR line too long\n")
                return
            text = raw.decode("ascii", errors="replace").strip()
            if text:
                self.wfile.write(self.server.controller.handle(text).encode() + b"\n")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(board_ids, directory, port=0, ready=print):
    """Write the rig files, then serve until SIGTERM/SIGINT. `ready` gets the JSON summary."""
    ctl = Control()
    if not ctl.running():
        raise EmuError("no emulator is running: start the boards with `edgekit emu start` "
                       "first")
    infos = {i["id"]: i for i in ctl.request("list")}
    missing = [b for b in board_ids if b not in infos]
    if missing:
        raise EmuError(f"no running board {', '.join(missing)} (see `edgekit emu list`)")
    server = _Server(("127.0.0.1", port), _Handler)
    server.controller = RigController(board_ids, ctl)
    url = f"socket://127.0.0.1:{server.server_address[1]}"
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files = {}
    for bid in board_ids:
        path = directory / f"{bid}.rig.toml"
        path.write_text(rig_file(infos[bid], ctl.request("world", board_id=bid), url))
        files[bid] = {"rig": str(path), "pty": infos[bid]["pty"], "kind": infos[bid]["kind"],
                      "board": infos[bid]["board"]}
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ready({"url": url, "boards": files})
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()


def cmd_rig(args):
    def ready(summary):
        if args.json:
            print(json.dumps(summary, sort_keys=True), flush=True)
        else:
            print(f"rig serving {summary['url']} (Ctrl-C to stop)")
            for bid, b in summary["boards"].items():
                print(f"  {bid}: pytest hil_tests --board serial:{b['pty']} --rig {b['rig']}")
            sys.stdout.flush()
    serve(args.ids, args.dir, args.port, ready)
    return 0
