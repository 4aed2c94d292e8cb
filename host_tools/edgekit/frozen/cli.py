"""`edgekit build-image`: the manufacturer's image with one kind's firmware frozen."""
import json

from edgekit.frozen import boardimage


def cmd_build_image(args):
    from edgekit.flash.image import firmware_version
    p = boardimage.plan(args.board, args.kind, args.version or firmware_version(),
                        args.out, args.src)
    ran = None
    if p["toolchain_present"] and not args.dry_run:
        # With --json the build's own output goes to stderr: stdout is the one JSON line.
        ran = boardimage.run(p, log=2 if args.json else None)
    if args.json:
        print(json.dumps({k: v for k, v in p.items() if k != "argv"} | {"built": ran}))
        return 0
    print(f"manifest {p['manifest']} (the board's own manifest first: _boot.py mounts the "
          f"filesystem)\nfrozen   {p['frozen']}\n\nupstream build ({p['port']} port, "
          f"BOARD={p['upstream_board']}):")
    for c in p["commands"]:
        print("  " + c)
    if ran:
        print(f"\nbuilt {ran}")
    elif args.dry_run:
        print(f"\nimage (once built): {p['output']}")
    else:
        print(f"\n{p['toolchain']} is not on PATH ({p['toolchain_hint']}): run the commands "
              f"above where it is; the image will be {p['output']}")
    return 0


def register(sub):
    p = sub.add_parser("build-image", help="build MicroPython for a board with one kind's "
                       "firmware frozen in (boards without PSRAM)",
                       description="Write the frozen manifest for BOARD and KIND, print the "
                       "exact upstream build commands, and run them where the port's "
                       "toolchain (ESP-IDF, arm-none-eabi-gcc) is present. MICROPYTHON_SRC "
                       "names the MicroPython source tree (a clone of the board's tag).")
    p.add_argument("--board", required=True, help="board definition (boards/NAME.json)")
    p.add_argument("--kind", required=True, help="device kind whose firmware is frozen")
    p.add_argument("--version", help="firmware version (default: FW_VERSION in firmware/core/device.py)")
    p.add_argument("--out", help="folder for the manifest and the frozen files "
                   "(default build/image/BOARD-KIND)")
    p.add_argument("--src", help="MicroPython source tree (default: $MICROPYTHON_SRC)")
    p.add_argument("--dry-run", action="store_true", help="only print the commands")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_build_image)
