"""`edgekit maintenance`: open a provisioned device's REPL for a bounded time.

    edgekit maintenance /dev/ttyUSB0 --minutes 10
    mpremote connect /dev/ttyUSB0 fs ls          # works until the window closes

A provisioned device ignores Ctrl-C and the raw-REPL bytes on its link (SPEC 12): the REPL
gives whoever reaches it the device's private key. This command sends the operator-signed
COMMAND "maintenance", bound to the device's id, after which the device obeys Ctrl-C until
the window ends; a REPL session still open then ends with a reset into the locked firmware.
The opening is logged in the device's log journal and in the registry.
"""
import json
import time

from edgekit import catalog as C
from edgekit.errors import EdgekitError
from edgekit.operate.connect import add_common_options as _common, connect as _connect

MAX_MINUTES = 60        # firmware/core/maintenance.py MAX_MINUTES


def open_window(session, device_id, minutes):
    """Send the signed request; the device's answer (minutes, seconds granted)."""
    msg = session.request(C.COMMAND, {C.K_NAME: "maintenance",
                                      C.K_ARGS: {"minutes": minutes, "device": device_id}},
                          expect=C.COMMAND_RESULT)
    return msg, msg.payload.get(C.K_RESULT) or {}


def cmd_maintenance(args):
    if not 1 <= args.minutes <= MAX_MINUTES:
        raise EdgekitError(f"--minutes {args.minutes}: a window is 1..{MAX_MINUTES} minutes")
    session, transport, registry, device_id = _connect(args, need_operator=True)
    try:
        msg, granted = open_window(session, device_id, args.minutes)
        registry.touch(device_id, msg.seq)
        until = time.time() + granted.get("seconds", args.minutes * 60)
        registry.record_event(device_id, "maintenance", {"minutes": args.minutes,
                                                         "until": int(until)})
    finally:
        transport.close()
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(until))
    if args.json:
        print(json.dumps({"device": device_id, "minutes": args.minutes, "until": int(until),
                          "port": args.port}))
    else:
        print(f"{device_id}: maintenance open until {when} ({args.minutes} min). The REPL now "
              f"answers Ctrl-C on {args.port} (e.g. `mpremote connect {args.port} repl`); "
              "at the end the device resets into its locked firmware.")


def register(subparsers):
    p = subparsers.add_parser(
        "maintenance", help="open a provisioned device's REPL for N minutes (signed)",
        description="Send the operator-signed maintenance command: the device then obeys "
                    "Ctrl-C on its link (mpremote, edgekit flash --wipe) until the window "
                    "ends, and resets into its locked firmware then. Logged on the device "
                    "and in the registry. See docs/security.md.")
    _common(p)
    p.add_argument("--minutes", type=int, default=10,
                   help=f"length of the window, 1..{MAX_MINUTES} (default 10)")
    p.set_defaults(func=cmd_maintenance)
