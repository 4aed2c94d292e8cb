"""Ctrl-C that arrives while an emulated board starts: its launcher (what a port's C code and
frozen _boot.py do on a real board) is never interruptible, so a Ctrl-C there cannot leave a
provisioned board at a REPL (SPEC 12). Found on the serial tray: a Ctrl-C streamed through a
reset landed between the HAL's hello and boot.py's kbd_intr(-1), the launcher stopped with
KeyboardInterrupt, and `micropython -i` gave whoever sent it a prompt."""
import time
from pathlib import Path

import serial
from conftest import read_until

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


def _until_hello(target, timeout=20.0):
    end = time.monotonic() + timeout
    while True:
        transport = target.transport()
        try:
            return Session(transport, timeout=1).hello()
        except Exception:  # noqa: BLE001 - still booting
            if time.monotonic() > end:
                raise
        finally:
            transport.close()


def test_a_vm_ending_itself_after_a_raw_repl_session_boots_the_firmware(emu, tmp_path):
    """Found on the serial tray (CI): a Ctrl-C streamed through resets can reach the VM just
    after the firmware disarmed it, and the VM ends as a soft reboot. The emulator soft-reboots
    into the REPL the VM last announced, and it remembered the raw REPL of a strap session
    several resets before (the bench's factory reset ends its raw session by a power cycle):
    the provisioned board came back in a raw REPL, silent to HELLO.
    The REPL a VM announced dies with it; a reset board runs its firmware."""
    import os
    import signal

    t = EmulatedTarget(emu, BoardSpec("emu:esp32:water_meter"), time_mode="real")
    try:
        provision(t, HilFleet(Path(tmp_path)), "water_meter").close()
        t.world.set(maint_strap=True)       # the bench strap: the REPL for one boot
        t.reset()
        _until_hello(t)
        port = serial.serial_for_url(t.url, baudrate=115200, timeout=0.1)
        try:    # a raw REPL session the reset ends (what the bench's factory reset does)
            port.write(b"\r\x03\r\x01")
            read_until(port, b"raw REPL; CTRL-B to exit\r\n>")
            port.write(b"print(6*7)\x04")
            assert b"42" in read_until(port, b"\x04>")
        finally:
            port.close()
        t.world.set(maint_strap=False)
        t.reset()
        _until_hello(t)                     # locked again, running its firmware
        board = emu.sup.get(t.handle.id)

        def ctrl_c_lands_after_disarm():
            board._sigint_at = board.loop.time()    # the host's 0D 03 was just taken
            os.kill(board.vm.pid, signal.SIGINT)    # ... and SIG_DFL ends the VM
        emu.call(ctrl_c_lands_after_disarm)
        _until_hello(t)                     # before the fix: a raw REPL, no answer
        port = serial.serial_for_url(t.url, baudrate=115200, timeout=0.2)
        try:
            port.write(b"print('PWN')\x04")     # what a raw REPL would run
            said = b""
            end = time.monotonic() + 1.5
            while time.monotonic() < end:
                said += port.read(4096)
        finally:
            port.close()
        assert b"PWN" not in said and b"raw REPL" not in said, said
    finally:
        t.close()
