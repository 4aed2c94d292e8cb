"""Ctrl-C that arrives while an emulated board starts: its launcher (what a port's C code and
frozen _boot.py do on a real board) is never interruptible, so a Ctrl-C there cannot leave a
provisioned board at a REPL (SPEC 12). Found on the serial tray: a Ctrl-C streamed through a
reset landed between the HAL's hello and boot.py's kbd_intr(-1), the launcher stopped with
KeyboardInterrupt, and `micropython -i` gave whoever sent it a prompt."""
import time
from pathlib import Path

import serial

from edgekit.emu import hal_ops
from edgekit.hil.devices import HilFleet, provision
from edgekit.hil.targets import BoardSpec, EmulatedTarget
from edgekit.protocol.session import Session


def test_a_ctrl_c_during_the_launcher_leaves_no_repl(emu, tmp_path, monkeypatch):
    t = EmulatedTarget(emu, BoardSpec("emu:esp32:water_meter"), time_mode="real")
    try:
        provision(t, HilFleet(Path(tmp_path)), "water_meter").close()
        hello = hal_ops._OPS["hello"]

        def hello_then_ctrl_c(board, req_id):
            hello(board, req_id)
            board._interrupt()      # what a 0x03 on the UART does at this instant

        monkeypatch.setitem(hal_ops._OPS, "hello", hello_then_ctrl_c)
        port = serial.serial_for_url(t.url, baudrate=115200, timeout=0.1)
        try:
            t.reset()
            said = b""
            end = time.monotonic() + 2.0
            while time.monotonic() < end:
                said += port.read(4096)
            port.write(b"\r\n")             # a prompt would answer this
            time.sleep(0.3)
            said += port.read(4096)
        finally:
            port.close()
            monkeypatch.setitem(hal_ops._OPS, "hello", hello)
        assert b">>>" not in said and b"KeyboardInterrupt" not in said, said
        transport = t.transport()
        try:
            assert Session(transport, timeout=3).hello()   # the firmware answers
        finally:
            transport.close()
    finally:
        t.close()
