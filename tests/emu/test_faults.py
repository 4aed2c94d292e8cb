"""Fault injection: power cuts during writes, brown-out after N flash writes, link noise,
unplug/replug."""
import os
import socket
import time

import pytest
import serial

from conftest import read_until, wait_file

WRITER_APP = r"""
import hal
with open("/boots.txt", "a") as f:
    f.write(hal.reset_cause() + "\n")
try:
    with open("/state.bin", "rb") as f:
        data = f.read()
except OSError:
    data = b""
# state.bin is 20000 copies of one byte, replaced by write-to-temp + rename
good = not data or (len(data) == 20000 and data.count(data[:1]) == len(data))
with open("/check.txt", "a") as f:
    f.write("%s %d\n" % ("ok" if good else "TORN", data[0] if data else -1))
n = (data[0] + 1) if data else 1
while True:
    payload = bytes([n & 255]) * 10000
    with open("/state.tmp", "wb") as f:
        hal.flash.write(f, payload)
        hal.flash.write(f, payload)
    hal.flash.rename("/state.tmp", "/state.bin")
    n += 1
"""


def test_power_cuts_during_writes_leave_old_or_new_and_cold_boot(emu, tmp_path):
    (tmp_path / "main.py").write_text(WRITER_APP)
    b = emu.start("esp32", time="virtual", flash=tmp_path, seed=7)
    try:
        cuts = 5
        for i in range(cuts):
            wait_file(tmp_path / "check.txt", lambda t, n=i + 1: t.count("\n") >= n)
            time.sleep(0.15)                   # let it write a while...
            b.powercut(within=0.1)             # ...then cut at a random instant
        checks = wait_file(tmp_path / "check.txt",
                           lambda t: t.count("\n") >= cuts + 1).split("\n")[:cuts + 1]
        assert all(c.startswith("ok") for c in checks), checks
        values = [int(c.split()[1]) for c in checks]
        assert values[0] == -1 and values[-1] > 0       # it did write between the cuts
        boots = (tmp_path / "boots.txt").read_text().split()
        assert boots[:cuts + 1] == ["power_on"] * (cuts + 1)
        assert b.info()["resets"]["power_on"] == cuts + 1
    finally:
        b.stop()


LOGGER_APP = r"""
import hal
REC = 100
try:
    with open("/log.bin", "rb") as f:
        data = f.read()
except OSError:
    data = b""
with open("/report.txt", "a") as f:
    f.write("%s %d %d\n" % (hal.reset_cause(), len(data) // REC, len(data) % REC))
seq = len(data) // REC
while True:
    hal.sleep_ms(60000)
    seq += 1
    with open("/log.bin", "ab") as f:
        hal.flash.write(f, bytes([seq & 255]) * REC)
"""


def test_brownout_after_n_flash_writes(emu, tmp_path):
    (tmp_path / "main.py").write_text(LOGGER_APP)
    b = emu.start("esp32", time="paused", flash=tmp_path, seed=3)
    try:
        b.wait_for(lambda i: i["state"] == "asleep")
        b.advance(180)                          # three records
        b.brownout(3)                           # the third flash write from now fails
        b.advance(180)
        report = wait_file(tmp_path / "report.txt", lambda t: t.count("\n") >= 2)
        first, second = report.split("\n")[:2]
        assert first == "power_on 0 0"
        cause, whole, torn = second.split()
        # writes 4 and 5 completed; the 6th kept a strict prefix of its 100 bytes
        assert cause == "brownout" and int(whole) == 5 and 0 <= int(torn) < 100
        info = b.info()
        assert info["resets"] == {"power_on": 1, "brownout": 1}
        assert info["flash_ops"] == 6
    finally:
        b.stop()


ECHO_APP = r"""
import hal, micropython
micropython.kbd_intr(-1)
buf = bytearray(1)
got = bytearray()
while True:
    if not hal.wait(1000):
        continue
    while hal.link.readinto(buf):
        if buf[0] == ord("!") and not got:
            hal.link.write(bytes(range(256)) * 40)          # 10240 known bytes
        elif buf[0] == ord("#"):
            with open("/rx.bin", "wb") as f:
                f.write(got)
            got = bytearray()
        elif buf[0] != ord("!"):
            got.append(buf[0])
"""


def test_link_noise_flips_bytes_at_the_set_rate(emu, tmp_path):
    (tmp_path / "main.py").write_text(ECHO_APP)
    b = emu.start("esp32", flash=tmp_path)
    try:
        port = b.serial(timeout=0.2)
        time.sleep(0.2)
        rate = 0.01
        b.noise(rate, kinds=("flip",), direction="tx", seed=1)
        port.write(b"!")
        expected = bytes(range(256)) * 40
        got = b""
        end = time.monotonic() + 10
        while len(got) < len(expected) and time.monotonic() < end:
            got += port.read(len(expected) - len(got))
        assert len(got) == len(expected)                     # flips keep the length
        flips = sum(1 for x, y in zip(got, expected) if x != y)
        assert 0.5 * rate * len(expected) < flips < 1.5 * rate * len(expected)
        assert all(bin(x ^ y).count("1") == 1 for x, y in zip(got, expected) if x != y)

        # host -> board, all three kinds: the board sees about rate * n corrupted bytes
        b.noise(0.0, direction="tx")
        b.noise(0.02, direction="rx", seed=2)
        sent = bytes(i % 200 + 40 for i in range(4000)).replace(b"!", b"A").replace(b"#", b"B")
        port.write(sent)
        port.flush()
        time.sleep(len(sent) / 11520 + 0.3)
        b.noise(0.0, direction="rx")
        port.write(b"#")
        rx = wait_file(tmp_path / "rx.bin", timeout=10, binary=True)
        events = b.link_stats()["noise"]["rx"]
        n_events = sum(events.values())
        assert 0.5 * 0.02 * len(sent) < n_events < 1.5 * 0.02 * len(sent)
        assert min(events.values()) > 0                       # flips, drops and dups all seen
        assert len(rx) == len(sent) - events["drop"] + events["dup"]
        port.close()
    finally:
        b.stop()


def test_unplug_refuses_then_replug_works(emu):
    b = emu.start("esp32", bare=True)
    try:
        port = b.serial(timeout=0.1)
        port.write(b"\r")         # a fresh prompt: the boot one may predate our connection
        read_until(port, b">>> ")
        tty = serial.Serial(b.pty_link, timeout=0.1)
        old_pty = os.path.realpath(b.pty_link)
        b.unplug(2.0)
        with pytest.raises(serial.SerialException):           # the connection is dropped
            end = time.monotonic() + 2
            while time.monotonic() < end:
                port.read(1)
        with pytest.raises(serial.SerialException):           # the pty is hung up
            end = time.monotonic() + 2
            while time.monotonic() < end:
                tty.read(1)
        with pytest.raises(ConnectionRefusedError):           # new connections refused
            socket.create_connection(("127.0.0.1", int(b.url.rsplit(":", 1)[1])), timeout=1)
        assert not b.info()["plugged"] and b.info()["pty"] is None
        b.wait_for(lambda i: i["plugged"], timeout=10)        # back after 2 s
        port = b.serial(timeout=0.1)                          # plugged back in, same URL
        port.write(b"print(40+2)\r")
        assert b"42" in read_until(port, b"42")
        port.close()
        # a new pty, and the stable link follows it
        assert os.path.realpath(b.pty_link) == b.pty
        tty2 = serial.Serial(b.pty_link, timeout=0.1)
        tty2.write(b"print(6*7+1)\r")
        assert b"43" in read_until(tty2, b"43")
        tty2.close()
        assert old_pty and b.info()["plugged"]
    finally:
        b.stop()


def test_back_to_back_power_cuts_each_cost_a_boot(emu, tmp_path):
    """A cut that lands while the VM of the previous cut is still being reaped (SIGKILL is
    not instant on a loaded machine) is a second cut, not a lost one: every cut boots."""
    (tmp_path / "main.py").write_text("import time\nwhile True:\n    time.sleep(1)\n")
    b = emu.start("esp32", time="virtual", flash=tmp_path, seed=3)
    try:
        cuts = 30
        for _ in range(cuts):
            b.powercut()                       # as fast as the control channel allows
        info = b.wait_for(lambda i: i["state"] in ("asleep", "running")
                          and i["boots"] >= cuts + 1, timeout=30)
        assert info["boots"] == cuts + 1
        assert info["resets"]["power_on"] == cuts + 1
    finally:
        b.stop()
