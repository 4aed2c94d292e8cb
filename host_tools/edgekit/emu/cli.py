"""`edgekit emu ...`: start and drive emulated boards held by a detached supervisor."""
import json
import sys

from edgekit.emu import frozen_rom
from edgekit.board_defs import known_boards
from edgekit.emu.clock import MODES
from edgekit.emu.control import Control
from edgekit.emu.uart import NOISE_KINDS
from edgekit.emu.supervisor import EmuError


def _print(args, data, human):
    if getattr(args, "json", False):
        print(json.dumps(data, indent=None, sort_keys=True))
    else:
        human(data)


def _notes(ctl):
    for note in ctl.notes:
        print(f"edgekit emu: {note}", file=sys.stderr)


def _control(args, start=False):
    ctl = Control()
    if start:
        ctl.ensure()
    else:
        ctl.running()
    _notes(ctl)
    return ctl


def _board_line(i):
    kind = i.get("kind") or "-"
    return (f"{i['id']:<14} {i['board']:<8} {kind:<12} {i['state']:<8} {i['time']:<7} "
            f"sim {i['sim_s']:>12.1f} s  {i['url']}  {i['pty']}")


def _show_boards(infos):
    if not infos:
        print("no boards running")
        return
    for i in infos:
        print(_board_line(i))


def cmd_start(args):
    ctl = _control(args, start=True)
    info = ctl.request("start", board=args.board, kind=args.kind, time=args.time,
                       speed=args.speed, flash=args.flash, bare=args.bare, id=args.id,
                       drift_ppm=args.drift, rtc_drift_ppm=args.rtc_drift, rom=args.rom)
    _print(args, info, lambda i: print(_board_line(i) + f"\n  flash {i['flash']}"))


def cmd_fleet(args):
    if args.broker and not args.kind:
        raise EmuError("--broker provisions the boards: give their --kind too")
    if args.broker and args.time == "paused":
        raise EmuError("--broker boards report on their own schedule: use --time virtual "
                       "(the default) or real, not paused")
    if (args.site or args.config or args.net) and not args.broker:
        raise EmuError("--site, --config and --net go with --broker (a networked fleet)")
    ctl = _control(args, start=True)
    infos = ctl.request("fleet", count=args.count, board=args.board, kind=args.kind,
                        time=args.time, speed=args.speed)
    if not args.broker:
        _print(args, infos, _show_boards)
        return None
    if not args.json:
        _show_boards(infos)
    return _provision_networked(args, infos)


def _provision_networked(args, infos):
    """A networked fleet: each new board provisioned (the technician's `edgekit provision`,
    through its port) with the broker, so it reports over MQTT from its first schedule."""
    from edgekit.cli import main as edgekit
    argv = ["provision", "--ports", *[f"emu:{i['id']}" for i in infos], "--kind", args.kind,
            "--site", args.site or "emu-street", "--broker", args.broker]
    for flag, value in (("--config", args.config), ("--net", args.net)):
        if value:
            argv += [flag, value]
    if args.json:
        argv.append("--json")
    return edgekit(argv)


def cmd_list(args):
    ctl = _control(args)
    infos = ctl.request("list") if ctl.running() else []
    _print(args, infos, _show_boards)


def cmd_stop(args):
    if not args.all and not args.ids:
        raise EmuError("name the boards to stop (emu stop ID [ID...]), or --all")
    if args.all and args.ids:
        raise EmuError("give board ids or --all, not both")
    ctl = _control(args)
    if not ctl.running():
        print("no boards running")
        return
    stopped = (ctl.request("stop_all") if args.all
               else ctl.request("stop_many", board_ids=args.ids))
    _print(args, stopped, lambda r: print("\n".join(f"stopped {x['id']}" for x in r)
                                          or "no boards running"))


def _parse_assignments(pairs):
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise EmuError(f"{pair!r}: write NAME=VALUE, e.g. flow_lpm=12.5")
        values[name.strip()] = value.strip()
    return values


def cmd_set(args):
    ctl = _control(args)
    result = ctl.request("set", board_id=args.id, values=_parse_assignments(args.values))
    _print(args, result, lambda w: print(", ".join(f"{k}={v}" for k, v in
                                                    sorted(w["values"].items()))))


def cmd_world(args):
    ctl = _control(args)
    _print(args, ctl.request("world", board_id=args.id),
           lambda w: print(json.dumps(w, indent=2, sort_keys=True)))


def cmd_drive(args):
    ctl = _control(args)
    try:
        raw = open(args.csv, "rb").read()
    except OSError as exc:
        raise EmuError(f"cannot read {args.csv}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EmuError(f"{args.csv}: not UTF-8 text (byte {exc.start}): a drive is a CSV "
                       "file, header t,NAME,...") from None
    try:
        result = ctl.request("drive", board_id=args.id, csv_text=text)
    except EmuError as exc:         # the supervisor names the line; this names the file
        raise EmuError(f"{args.csv}: {exc}") from None
    _print(args, result, lambda r: print(f"{r['rows']} rows scheduled"))


def cmd_fault(args):
    ctl = _control(args)
    value = None
    if args.value is not None:
        try:
            value = float(args.value)
        except ValueError:
            raise EmuError(f"fault value {args.value!r} must be a number") from None
    result = ctl.request("fault", board_id=args.id, name=args.name, kind=args.kind,
                         value=value)
    _print(args, result, lambda w: print(f"faults: {w['faults'] or 'none'}"))


def _show_clock(c):
    rtc = "unset" if c["rtc"] is None else f"{c['rtc']:.0f}"
    print(f"{c['id']}: {c['mode']} time, sim {c['sim_s']:.3f} s, device {c['device_ms']} ms, "
          f"rtc {rtc}, drift {c['drift_ppm']} ppm, {c['state']}")


def cmd_advance(args):
    ctl = _control(args)
    _print(args, ctl.request("advance", board_id=args.id, seconds=args.seconds), _show_clock)


def cmd_clock(args):
    ctl = _control(args)
    if args.drift is not None:
        ctl.request("drift", board_id=args.id, ppm=args.drift)
    if args.mode:
        ctl.request("set_time_mode", board_id=args.id, mode=args.mode, speed=args.speed)
    _print(args, ctl.request("clock", board_id=args.id), _show_clock)


def cmd_powercut(args):
    ctl = _control(args)
    result = ctl.request("powercut", board_id=args.id, at=args.at, off=args.off,
                         within=args.within)
    _print(args, result, lambda r: print(f"{r['id']}: power cut at sim {r['cut_at_s']:.3f} s"))


def cmd_brownout(args):
    ctl = _control(args)
    result = ctl.request("brownout", board_id=args.id, after_writes=args.after)
    _print(args, result, lambda r: print(f"{r['id']}: brown-out armed, flash operation "
                                         f"{r['after_writes']} from now fails"))


def cmd_noise(args):
    ctl = _control(args)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    result = ctl.request("noise", board_id=args.id, rate=args.rate, kinds=kinds,
                         direction=args.direction, seed=args.seed)
    _print(args, result, lambda r: print(f"{r['id']}: noise {r['rate']} per byte "
                                         f"({', '.join(r['kinds'])}, {r['direction']})"))


def cmd_unplug(args):
    ctl = _control(args)
    result = ctl.request("unplug", board_id=args.id, seconds=args.seconds)
    _print(args, result, lambda r: print(f"{r['id']}: unplugged"
                                         + (f" for {r['for_s']} s" if r["for_s"] else "")))


def cmd_replug(args):
    ctl = _control(args)
    _print(args, ctl.request("replug", board_id=args.id), lambda r: print(f"{r['id']}: plugged"))


def register(subparsers):
    emu = subparsers.add_parser(
        "emu", help="emulated boards running the real firmware in the MicroPython VM",
        description="Start and drive emulated boards. Boards run in a detached supervisor "
                    "(state in $EDGEKIT_HOME/emu) and are reachable like USB boards: "
                    "socket://127.0.0.1:PORT or a /dev/pts path.")
    sub = emu.add_subparsers(dest="emu_command", metavar="COMMAND")
    emu.set_defaults(func=lambda a: emu.print_help() or 2)

    def add(name, func, help_text, json_out=True):
        p = sub.add_parser(name, help=help_text, description=help_text)
        if json_out:
            p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(func=func)
        return p

    def board_options(p, time_default, time_note=""):
        p.add_argument("--board", default="esp32", choices=known_boards(),
                       help="board definition (boards/<name>.json; default esp32)")
        p.add_argument("--kind", help="device kind whose world to simulate, e.g. water_meter")
        p.add_argument("--time", default=time_default, choices=MODES,
                       help="real: the wall clock, an idle board uses no CPU; virtual: idle "
                            "time skipped (uncapped, an idle board keeps a core busy: give "
                            "--speed); paused: moves only on `emu advance` (default "
                            f"{time_default}{time_note})")
        p.add_argument("--speed", type=float,
                       help="virtual time only: cap at this many simulated s per wall s")

    p = add("start", cmd_start, "start a board (and the supervisor if needed)")
    board_options(p, "real")
    p.add_argument("--flash", help="flash directory (default: a new one per board id)")
    p.add_argument("--id", help="board id (reusing an id reuses its flash)")
    p.add_argument("--bare", action="store_true",
                   help="only the MicroPython runtime and an empty flash (for flashing)")
    p.add_argument("--drift", type=float, default=0.0,
                   help="device crystal error in ppm (ticks and RTC; default 0)")
    p.add_argument("--rtc-drift", type=float,
                   help="the RTC's own error in ppm, on top (default: the board "
                        "definition's rtc_drift_ppm)")
    p.add_argument("--rom", choices=frozen_rom.ROMS, default=frozen_rom.DEFAULT,
                   help="the VM: mpy (default, the 64-bit PyPI VM, heap + a measured "
                        "allowance) or frozen32 (the 32-bit VM with the firmware frozen, "
                        "the board's heap exactly; build it with `make frozen-vm`)")

    p = add("fleet", cmd_fleet, "start COUNT boards at once; with --broker, provisioned to "
                                "report over the network (a networked street)")
    p.add_argument("--count", type=int, required=True, help="how many boards")
    board_options(p, "virtual", ", capped at 60x unless --speed")
    p.add_argument("--broker", metavar="URL",
                   help="provision every board (edgekit provision, with the operator key) to "
                        "the fleet's broker, mqtt://HOST[:PORT]: they publish to it as "
                        "devices in the street do (docs/fleet.md); needs --kind")
    p.add_argument("--site", help="with --broker: the site in their certificates (default "
                                  "emu-street)")
    p.add_argument("--config", metavar="FILE",
                   help="with --broker: app settings for every board (TOML or JSON), e.g. "
                        "report_s = 300 for a street that reports every 5 simulated minutes")
    p.add_argument("--net", metavar="FILE",
                   help="with --broker: network settings (keepalive, poll_s, ...)")

    add("list", cmd_list, "list running boards")

    p = add("stop", cmd_stop, "stop boards (their flash directories are kept); several at "
                              "once are stopped concurrently")
    p.add_argument("ids", nargs="*", metavar="ID", help="board ids")
    p.add_argument("--all", action="store_true", help="stop every board and the supervisor")

    p = add("set", cmd_set, "set world quantities, e.g. `emu set esp32-1 flow_lpm=12.5`")
    p.add_argument("id")
    p.add_argument("values", nargs="+", metavar="NAME=VALUE")

    p = add("world", cmd_world, "show a board's world: quantities, outputs, faults")
    p.add_argument("id")

    p = add("drive", cmd_drive, "drive quantities from a CSV time series (t column: seconds)")
    p.add_argument("id")
    p.add_argument("csv", help="CSV file: header t,NAME,...")

    p = add("fault", cmd_fault, "inject a sensor fault: stuck, range VALUE, nack, or none")
    p.add_argument("id")
    p.add_argument("name", help="what the HAL reads: a role (battery, flow) or sensor (env)")
    p.add_argument("kind", choices=("stuck", "range", "nack", "none"))
    p.add_argument("value", nargs="?", help="stuck/range: the value to return")

    p = add("advance", cmd_advance, "paused time: run a board through SECONDS of sim time")
    p.add_argument("id")
    p.add_argument("seconds", type=float)

    p = add("clock", cmd_clock, "show (or change) a board's clock")
    p.add_argument("id")
    p.add_argument("--mode", choices=MODES, help="switch time mode")
    p.add_argument("--speed", type=float, help="with --mode virtual: cap the speed")
    p.add_argument("--drift", type=float, help="set the device clock error in ppm")

    p = add("powercut", cmd_powercut, "cut the power (cold boot on the same flash)")
    p.add_argument("id")
    p.add_argument("--at", type=float, help="in this many simulated seconds (default now)")
    p.add_argument("--within", type=float, help="at a random instant within this many s")
    p.add_argument("--off", type=float, default=0.0,
                   help="simulated seconds without power before it comes back")

    p = add("brownout", cmd_brownout, "brown-out during the Nth flash write from now")
    p.add_argument("id")
    p.add_argument("--after", type=int, required=True, metavar="N")

    p = add("noise", cmd_noise, "corrupt link bytes at a rate (0 turns it off)")
    p.add_argument("id")
    p.add_argument("--rate", type=float, required=True, help="probability per byte, 0..1")
    p.add_argument("--kinds", default=",".join(NOISE_KINDS), help="flip,drop,dup")
    p.add_argument("--direction", default="both", choices=("both", "rx", "tx"),
                   help="rx: host to board, tx: board to host")
    p.add_argument("--seed", type=int)

    p = add("unplug", cmd_unplug, "unplug the link (clients dropped, connections refused)")
    p.add_argument("id")
    p.add_argument("--for", dest="seconds", type=float,
                   help="wall seconds until it is plugged back (default: until replug)")

    p = add("replug", cmd_replug, "plug the link back in")
    p.add_argument("id")

    p = add("rig", _cmd_rig, "serve the bench rig (relay board) of running boards: writes a "
                             "rig file per board for `pytest hil_tests --board serial:PTY "
                             "--rig FILE`, then serves until stopped (docs/hil.md)")
    p.add_argument("ids", nargs="+", metavar="ID", help="board ids the rig is wired to")
    p.add_argument("--dir", default=".", help="where to write ID.rig.toml (default: here)")
    p.add_argument("--port", type=int, default=0,
                   help="TCP port of the rig's line protocol (default: any free port)")


def _cmd_rig(args):
    from edgekit.emu.rig_server import cmd_rig
    return cmd_rig(args)
