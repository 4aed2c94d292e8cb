"""Board definitions (boards/<name>.json): load, validate, list.

The JSON files are data shared by the host (emulator, OTA target checks, flashing) and the
device (`hal.BOARD`). This module is the one host reader, so a malformed definition fails
here with the file and field named instead of deep inside a board start.
"""
import json
import re

from edgekit.errors import EdgekitError
from edgekit.paths import BOARDS_DIR

PIN_MODES = ("pulse", "in", "out", "adc")
_REQUIRED = {"name": str, "description": str, "mcu": str, "port": str, "runtime": str,
             "heap": str, "flash": dict, "link": dict, "pins": dict, "peripherals": list}
_SIZE = re.compile(r"^(\d+)([KM]?)$")


class BoardError(EdgekitError):
    """A board name or definition is wrong."""


# Fields of a definition no firmware reads: documentation, the emulator's ROM banners, the
# flashing tool's runtime image, the host's energy model. A device (and the emulator, which
# must show the firmware what a board holds) gets the definition without them: as dicts in
# the VM they would cost a 110 KB ESP32 about 5 KB of heap for nothing.
HOST_ONLY_FIELDS = ("description", "mcu", "module", "peripherals", "power", "rom_banner",
                    "runtime_image", "machine_suffix", "rtc_drift_ppm", "heap_source")
HOST_ONLY_PIN_FIELDS = ("note",)


def device_view(board):
    """The definition as the device holds it (/board.json, hal.BOARD)."""
    view = {k: v for k, v in board.items() if k not in HOST_ONLY_FIELDS}
    view["pins"] = {role: {k: v for k, v in pin.items() if k not in HOST_ONLY_PIN_FIELDS}
                    for role, pin in board.get("pins", {}).items()}
    return view


# The protocol's link is the port's REPL stream (boards/HAL.md, "Which link carries the
# protocol"): a UART (baud, and the RX pin that wakes the board from light sleep) or the
# chip's USB CDC / USB-serial-JTAG port, which has no baud rate.
LINK_KINDS = ("uart", "usb_cdc")
# What the emulator paces a USB CDC link to: USB full speed (12 Mbit/s), as a baud rate.
USB_CDC_EMU_BAUD = 12_000_000


def _check_link(link, bad):
    kind = link.get("kind")
    if kind not in LINK_KINDS:
        bad(f"link.kind must be one of {', '.join(LINK_KINDS)} (the port's REPL stream)")
    if kind == "uart":
        if not isinstance(link.get("baud"), int) or link["baud"] <= 0:
            bad("link.baud must be a positive integer (the UART's baud rate)")
        if not isinstance(link.get("rx"), int):
            bad("link.rx must be the UART's RX GPIO (it wakes the board from light sleep)")
    elif "baud" in link or "rx" in link:
        bad("a usb_cdc link has no baud rate and no RX pin: remove link.baud and link.rx")


def link_baud(board):
    """The link's bits per second as the emulator paces it: the UART's baud, or USB full
    speed for a USB CDC link."""
    link = board["link"]
    return link["baud"] if link["kind"] == "uart" else USB_CDC_EMU_BAUD


def serial_baud(board):
    """The baud rate the host sets on its serial port for this board's link: the UART's;
    for USB CDC any value does (the port ignores it), pyserial's usual 115200."""
    link = board["link"]
    return link["baud"] if link["kind"] == "uart" else 115200


def known_boards():
    """Names of the boards defined in boards/*.json, sorted."""
    return sorted(p.stem for p in BOARDS_DIR.glob("*.json"))


def parse_size(text):
    """"110K" -> 112640 bytes (K = 1024, M = 1024**2)."""
    m = _SIZE.match(str(text).strip().upper())
    if not m:
        raise BoardError(f"size {text!r} is not a number with an optional K or M suffix")
    return int(m.group(1)) * {"": 1, "K": 1024, "M": 1024 * 1024}[m.group(2)]


def load_board(name):
    """The validated definition of board `name` (a dict, as the device sees it)."""
    path = BOARDS_DIR / f"{name}.json"
    if not re.fullmatch(r"[a-z0-9_]+", str(name)) or not path.is_file():
        raise BoardError(f"unknown board {name!r}; known boards: {', '.join(known_boards())}")
    try:
        board = json.loads(path.read_text())
    except ValueError as exc:
        raise BoardError(f"{path}: not valid JSON ({exc}); fix the file") from None
    validate(board, str(path))
    return board


def validate(board, where="board definition"):
    def bad(msg):
        raise BoardError(f"{where}: {msg}")

    for key, kind in _REQUIRED.items():
        if not isinstance(board.get(key), kind):
            bad(f"field {key!r} must be a {kind.__name__}")
    parse_size(board["heap"])
    if not isinstance(board.get("heap_source", ""), str):
        bad("heap_source must be text: where the heap figure comes from")
    flash = board["flash"]
    for key in ("size", "fs_size", "block_size"):
        if not isinstance(flash.get(key), int) or flash[key] <= 0:
            bad(f"flash.{key} must be a positive integer (bytes)")
    if flash.get("fs") != "littlefs2":
        bad("flash.fs must be 'littlefs2' (the only filesystem edgekit supports)")
    if flash["fs_size"] > flash["size"]:
        bad("flash.fs_size is larger than flash.size")
    _check_link(board["link"], bad)
    for key in ("max_frame", "window", "wdt_ms", "wdt_max_ms"):
        if not isinstance(board.get(key), int) or board[key] <= 0:
            bad(f"{key} must be a positive integer")
    from edgekit import catalog
    if board["max_frame"] > catalog.MAX_FRAME_LIMIT:
        bad(f"max_frame {board['max_frame']} exceeds the protocol limit "
            f"{catalog.MAX_FRAME_LIMIT}")
    if board["wdt_ms"] > board["wdt_max_ms"]:
        bad(f"wdt_ms {board['wdt_ms']} is above the hardware limit wdt_max_ms")
    drift = board.get("rtc_drift_ppm", 0)
    if isinstance(drift, bool) or not isinstance(drift, (int, float)) or abs(drift) >= 1000:
        bad("rtc_drift_ppm must be a number of ppm between -1000 and 1000 (the RTC's "
            "error; positive: it runs fast)")
    for role, pin in board["pins"].items():
        if not isinstance(pin, dict) or pin.get("mode") not in PIN_MODES:
            bad(f"pins.{role}.mode must be one of {', '.join(PIN_MODES)}")
        if "pin" not in pin:
            bad(f"pins.{role} has no 'pin' number")
        if pin.get("wake") and pin["mode"] != "in":
            bad(f"pins.{role}: only an 'in' pin can be a wake source")
    used = {}
    for role, pin in board["pins"].items():
        if pin["pin"] in used:
            bad(f"pins.{role} and pins.{used[pin['pin']]} are both on pin {pin['pin']}")
        used[pin["pin"]] = role
    buses = board.get("buses", {})
    for name, bus in buses.items():
        if bus.get("kind") == "uart" and not isinstance(bus.get("rx"), int):
            bad(f"buses.{name}: a uart bus needs its rx pin (tx may be left out: receive-only)")
    for sensor, spec in board.get("sensors", {}).items():
        if spec.get("bus") not in buses:
            bad(f"sensors.{sensor}.bus {spec.get('bus')!r} is not one of buses: "
                f"{', '.join(buses) or 'none'}")
        alert = spec.get("alert")
        if alert is not None and not board["pins"].get(alert, {}).get("wake"):
            bad(f"sensors.{sensor}.alert {alert!r} must name an 'in' pin with \"wake\": true")
    return board


def heap_arg(board):
    """The `-X heapsize=` value for this board's VM."""
    return str(board["heap"]).upper()
