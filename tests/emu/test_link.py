"""The emulated UART: first prompt, pyserial over TCP and pty, real mpremote, Ctrl-C."""
import os
import time

import serial

from conftest import mpremote, raw_exec, read_until


def test_bare_board_boots_to_prompt_over_tcp_and_pty(emu):
    b = emu.start("esp32", bare=True)
    try:
        port = serial.serial_for_url(b.url, timeout=0.1)
        # In real time (emu start's default) the boot banner can go out before we connect,
        # as on a real board: Ctrl-B at the friendly REPL prints it again.
        port.write(b"\x02")
        out = read_until(port, b">>> ")
        assert b"MicroPython" in out
        # The same UART through the host-facing pty (what a USB serial port would be).
        tty = serial.Serial(b.pty, timeout=0.1)
        tty.write(b"import hal; print(6*7, hal.NAME)\r")
        seen = read_until(tty, b"42 esp32", 5)
        assert b"42 esp32" in seen
        # both hosts see the board's output, as two listeners on one UART line would
        assert b"42 esp32" in read_until(port, b"42 esp32", 5)
        tty.close()
        port.close()
        assert os.listdir(b.flash) == []            # bare: an empty flash, nothing installed
    finally:
        b.stop()


def test_mpremote_exec_cp_ls_and_soft_reset_without_resume(emu, tmp_path):
    b = emu.start("esp32")                          # placeholder main.py loop is running
    try:
        assert mpremote(b.url, "exec", "print(1+1)").strip() == "2"
        src = tmp_path / "hello.txt"
        src.write_bytes(os.urandom(3000))
        out = mpremote(b.url, "fs", "cp", str(src), ":hello.txt", "+", "fs", "ls")
        assert "hello.txt" in out
        # it is on the board's flash directory, byte for byte, and survives a reboot
        assert (open(os.path.join(b.flash, "hello.txt"), "rb").read() == src.read_bytes())
        mpremote(b.url, "soft-reset")
        out = mpremote(b.url, "exec", "import os, hal; print(os.listdir('/'), hal.reset_cause())")
        assert "hello.txt" in out and "soft" in out
        # absolute paths land on the flash, never on the host's root
        mpremote(b.url, "fs", "mkdir", ":/lib", "+", "fs", "cp", str(src), ":/lib/x.bin")
        assert os.path.exists(os.path.join(b.flash, "lib", "x.bin"))
        info = b.info()
        assert info["resets"]["soft"] >= 4 and info["resets"]["power_on"] == 1
        # mpremote through the pty path too (pyserial's RTS/DTR on a pty)
        assert mpremote(b.pty, "exec", "print(3*3)").strip() == "9"
    finally:
        b.stop()


def test_ctrl_c_interrupts_code_running_from_the_raw_repl(emu):
    b = emu.start("esp32", bare=True)
    try:
        port = b.serial(timeout=0.1)
        port.write(b"\r")     # a fresh prompt: the boot one may predate us
        read_until(port, b">>> ")
        port.write(b"\r\x01")
        read_until(port, b"raw REPL; CTRL-B to exit\r\n>")
        port.write(b"while True:\n    pass\n\x04")
        read_until(port, b"OK")
        time.sleep(0.3)
        port.write(b"\x03")                      # kbd_intr armed: becomes KeyboardInterrupt
        out = read_until(port, b"\x04>", 5)
        assert b"KeyboardInterrupt" in out
        # with kbd_intr(-1) the same byte is data, as on a real port
        port.write(b"import micropython, sys\nmicropython.kbd_intr(-1)\n"
                   b"print(sys.stdin.buffer.read(1))\nmicropython.kbd_intr(3)\n\x04")
        read_until(port, b"OK")
        time.sleep(0.2)
        port.write(b"\x03")
        out = read_until(port, b"\x04>", 5)
        assert b"b'\\x03'" in out
    finally:
        b.stop()


def test_raw_exec_helper_and_hal_basics(emu):
    b = emu.start("rp2040", bare=True)
    try:
        port = b.serial(timeout=0.1)
        port.write(b"\r")     # a fresh prompt: the boot one may predate us
        read_until(port, b">>> ")
        out = raw_exec(port, "import hal, json\nprint(json.dumps([hal.NAME, hal.BOARD['heap'], "
                             "len(hal.unique_id()), hal.reset_cause(), hal.time()]))")
        assert out.strip() == '["rp2040", "190K", 8, "power_on", null]'
    finally:
        b.stop()


def test_ctrl_d_at_the_friendly_repl_soft_reboots_into_main(emu, tmp_path):
    (tmp_path / "boot.py").write_text("print('boot ran')\nraise ValueError('broken boot')\n")
    (tmp_path / "main.py").write_text("import hal\nprint('main ran', hal.reset_cause())\n")
    b = emu.start("esp32", flash=tmp_path)
    try:
        port = b.serial(timeout=0.1)
        # Booted again with this client connected: output before any client is connected
        # goes nowhere, and the first boot (from flash in RAM) can finish before it connects.
        b.reset("power_on")
        port.write(b"\r")
        out = read_until(port, b">>> ")
        # a failing boot.py prints its traceback and main.py still runs, as on a port
        assert b"boot ran" in out and b"ValueError: broken boot" in out
        assert b"main ran power_on" in out and b"emu_launch" not in out
        port.write(b"\x04")
        out = read_until(port, b"main ran soft")
        assert b"MPY: soft reboot\r\n" in out
        # a soft reboot from the raw REPL skips main.py and comes back in the raw REPL,
        # even though boot.py fails
        read_until(port, b">>> ")
        port.write(b"\r\x01")
        read_until(port, b"raw REPL; CTRL-B to exit\r\n>")
        port.write(b"\x04")
        out = read_until(port, b"raw REPL; CTRL-B to exit\r\n")
        assert b"MPY: soft reboot" in out and b"boot ran" in out and b"main ran" not in out
        assert b"MicroPython" not in out.split(b"MPY: soft reboot")[1]  # banner hidden
        port.write(b"import hal; print(hal.reset_cause())\x04")
        assert b"OKsoft" in read_until(port, b"\x04>")
        port.close()
    finally:
        b.stop()
