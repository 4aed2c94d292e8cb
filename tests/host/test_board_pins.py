"""Every board definition keeps off the pins its module reserves (boards/modules/
reserved_pins.json: flash, PSRAM, USB, the link's UART, strapping pins, pins that glitch at
boot, input-only pins), uses each pin once, and names a module the table knows."""
import json

import pytest

from edgekit.board_defs import known_boards, load_board
from edgekit.paths import BOARDS_DIR

TABLE = json.loads((BOARDS_DIR / "modules" / "reserved_pins.json").read_text())


def rules(module):
    """(never, only, input_only) of `module`, following `like` to the module it extends."""
    entry = TABLE[module]
    never, only, input_only = {}, {}, set()
    if "like" in entry:
        never, only, input_only = rules(entry["like"])
    never = {**never, **{int(k): v for k, v in entry.get("never", {}).items()}}
    only = {**only, **{int(k): v for k, v in entry.get("only", {}).items()}}
    return never, only, input_only | set(entry.get("input_only", ()))


def uses(board):
    """[(pin, use, what)] of every role and bus line of a board definition."""
    out = []
    for role, p in board["pins"].items():
        mode = p["mode"]
        if mode == "in":
            use = "in_high" if p.get("active") == "high" else "in_low"
        else:
            use = {"out": "out", "pulse": "pulse", "adc": "adc"}[mode]
        out.append((p["pin"], use, role))
    for name, bus in board.get("buses", {}).items():
        lines = {"i2c": {"sda": "bus_out", "scl": "bus_out"},
                 "uart": {"tx": "bus_out", "rx": "bus_in"},
                 "spi": {"sck": "bus_out", "mosi": "bus_out", "miso": "bus_in",
                         "cs": "bus_out"}}[bus["kind"]]
        out += [(bus.get(line), use, f"{name}.{line}") for line, use in lines.items()]
    return [(pin, use, what) for pin, use, what in out if isinstance(pin, int)]


def violations(board):
    never, only, input_only = rules(board["module"])
    found = []
    for pin, use, what in uses(board):
        if pin in never:
            found.append(f"{what} on GPIO{pin}: {never[pin]}")
        elif pin in only and use not in only[pin][0]:
            found.append(f"{what} ({use}) on GPIO{pin}: {only[pin][1]}")
        elif pin in input_only and use in ("out", "bus_out"):
            found.append(f"{what} ({use}) on GPIO{pin}: input only")
    return found


@pytest.mark.parametrize("name", known_boards())
def test_board_keeps_off_its_modules_reserved_pins(name):
    board = load_board(name)
    assert board.get("module") in TABLE, f"{name}: name its module (one of {sorted(TABLE)})"
    assert violations(board) == []
    pins = [pin for pin, _, _ in uses(board)]
    assert len(pins) == len(set(pins)), f"{name}: a pin used twice"


def test_the_check_sees_the_clashes_the_issue_found():
    # Before this table: uart1 on GPIO16/17 on a WROVER, a relay and an LED on GPIO14/15,
    # SPI on GPIO35-37 of an octal-PSRAM S3, an ALERT input on the MTDI strap.
    wrover = dict(load_board("esp32"), module="ESP32-WROVER")
    assert any("uart1.tx on GPIO17" in v for v in violations(wrover))
    old = load_board("esp32")
    old["pins"] = dict(old["pins"], relay={"pin": 14, "mode": "out"},
                       led_alarm={"pin": 15, "mode": "out"},
                       temp_alert={"pin": 12, "mode": "in", "active": "high"})
    found = " | ".join(violations(old))
    assert "relay (out) on GPIO14" in found and "led_alarm (out) on GPIO15" in found
    assert "temp_alert (in_high) on GPIO12" in found
    s3 = dict(load_board("esp32s3_psram"), module="ESP32-S3-WROOM-1-N8R8")
    s3["buses"] = dict(s3["buses"], spi0={"kind": "spi", "sck": 36, "mosi": 35, "miso": 37,
                                          "cs": 39})
    assert len([v for v in violations(s3) if "octal PSRAM" in v]) == 3


def test_the_wrover_keeps_off_its_psram_pins():
    """GPIO16/17 drive a WROVER's PSRAM: its definition uses neither (uart1 receive-only on
    GPIO39 instead), and the table refuses them (the generic test above runs it too)."""
    wrover = load_board("esp32_wrover")
    assert wrover["module"] == "ESP32-WROVER" and rules("ESP32-WROVER")[0][16]
    assert not {16, 17} & {pin for pin, _, _ in uses(wrover)}
    assert wrover["buses"]["uart1"] == {"kind": "uart", "rx": 39, "baud": 9600}
    moved = dict(wrover, buses=dict(wrover["buses"], uart1={"kind": "uart", "rx": 16,
                                                             "baud": 9600}))
    assert any("uart1.rx on GPIO16: PSRAM" in v for v in violations(moved))
