"""No REPL for strangers (SPEC 12): a provisioned device's link obeys no byte sequence that
would run code, until an operator opens maintenance (or the bench holds the strap).

Tried as the attacker on the serial line did: raw bytes on the board's port, and the real
mpremote; the device's own answers (diag, its log journal) say what it counted."""
import os
import subprocess
import sys
import threading
import time

import pytest
import serial

from edgekit import catalog as C
from edgekit.errors import ProtocolError
from operator_cli import fleet_home, run  # noqa: F401 - fleet_home is a fixture

pytestmark = pytest.mark.hil(kind="water_meter")
# What the attacker sent: Ctrl-C twice, the raw REPL, code that reads the private seed, and
# the friendly REPL too.
ATTACK = (b"\r\x03\r\x03\r\x01import os\r\nprint('PWN', os.listdir('/ek'))\r\n\x04"
          b"\r\x02print('PWN' + str(6*7))\r\n")


def provision(board, capsys):
    code, _, err = run(capsys, "provision", board.url, "--kind", "water_meter", "--site", "x")
    assert code == 0, err


def diag(board, capsys):
    import json
    code, out, err = run(capsys, "command", board.url, "diag", "--json")
    assert code == 0, err
    return json.loads(out)["result"]


def attack(url, payload=ATTACK, listen=2.0):
    """Send `payload` on the port and return everything the board says meanwhile."""
    port = serial.serial_for_url(url, baudrate=115200, timeout=0.1)
    try:
        port.write(payload)
        data = b""
        end = time.monotonic() + listen
        while time.monotonic() < end:
            data += port.read(4096)
        return data
    finally:
        port.close()


def until_up(board, timeout=30.0):
    """After a reset: wait until the firmware answers HELLO (what a technician waits for
    before typing); Ctrl-C sent while a board boots is lost on a real one too."""
    from edgekit.protocol.session import Session
    end = time.monotonic() + timeout
    while True:
        transport = board.transport()
        try:
            Session(transport, timeout=2).hello()
            return
        except Exception as exc:  # noqa: BLE001 - still booting
            if time.monotonic() > end:
                raise AssertionError(f"no HELLO answer within {timeout:.0f} s ({exc}); the "
                                     f"board says: {listen(board.url)!r}") from exc
        finally:
            transport.close()


def listen(url, seconds=3.0):
    """The last of what the board says to a line feed (a prompt would answer it)."""
    port = serial.serial_for_url(url, baudrate=115200, timeout=0.2)
    try:
        port.write(b"\r\n")
        said, end = b"", time.monotonic() + seconds
        while time.monotonic() < end:
            said += port.read(4096)
        return said[-600:]
    finally:
        port.close()


def mpremote(url, *args, timeout=90):
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return subprocess.run([sys.executable, "-m", "mpremote", "connect", url, *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_provisioned_device_ignores_the_repl_bytes_and_counts_them(board, fleet_home,
                                                                   capsys):
    provision(board, capsys)
    before = diag(board, capsys)
    said = attack(board.url)
    assert b"raw REPL" not in said and b"PWN" not in said and b">>>" not in said, said
    result = diag(board, capsys)            # still the firmware, answering signed frames
    assert result["interrupts_refused"] >= 2
    assert result["boots"] == before["boots"] and result["maintenance_s"] == 0


def test_no_repl_through_a_reset_under_a_stream_of_ctrl_c(board, fleet_home, capsys):
    """The boot window: Ctrl-C arriving while boot.py and main.py start."""
    provision(board, capsys)
    port = serial.serial_for_url(board.url, baudrate=115200, timeout=0.05)
    stop = threading.Event()

    def spam():
        while not stop.is_set():
            try:
                port.write(b"\r\x03" * 8)
            except (OSError, serial.SerialException):
                pass            # the reset drops the link for a moment
            time.sleep(0.002)

    spammer = threading.Thread(target=spam)
    spammer.start()
    try:
        for _ in range(3):
            board.reset()
            time.sleep(0.5)
    finally:
        stop.set()
        spammer.join()
        port.close()
    until_up(board)
    said = attack(board.url)
    assert b"raw REPL" not in said and b"PWN" not in said, said
    assert diag(board, capsys)["interrupts_refused"] >= 1


def refused_by_a_locked_board(url):
    """mpremote gets no REPL. On a pty path (the emulator's /dev/pts, not a USB port) mpremote
    1.2x reads with no timeout (transport_serial.read_until: `if self.is_pty: read(1)`), so
    against a board that stays silent it waits forever instead of failing: a silent timeout
    is a refusal there too."""
    try:
        refused = mpremote(url, "exec", "print(6*7)", timeout=20)
    except subprocess.TimeoutExpired:
        assert url.startswith("/dev/pts/") or os.path.realpath(url).startswith("/dev/pts/")
        return
    assert refused.returncode != 0 and "42" not in refused.stdout
    assert "could not enter raw repl" in (refused.stdout + refused.stderr).lower()


@pytest.mark.hil(sim_s=125)  # a wait it needs: skips early on a bench
def test_mpremote_fails_cleanly_until_maintenance_then_works_then_locks_again(
        board, clock, fleet_home, capsys):
    provision(board, capsys)
    refused_by_a_locked_board(board.url)
    code, out, err = run(capsys, "maintenance", board.url, "--minutes", "2")
    assert code == 0, err
    assert "maintenance open until" in out
    opened = mpremote(board.url, "exec", "import os; print(6*7, 'identity' in os.listdir('/ek'))")
    assert opened.returncode == 0, opened.stderr
    assert "42 True" in opened.stdout
    # a second session in the same window: mpremote soft-reboots on connect, boot.py keeps
    # the deadline
    again = mpremote(board.url, "exec", "print(7*6)")
    assert again.returncode == 0 and "42" in again.stdout, again.stderr
    # the window ends: the board resets into its locked firmware
    clock.advance(125)
    until_up(board)
    refused_by_a_locked_board(board.url)
    result = diag(board, capsys)
    assert result["reset_cause"] == "hard"
    assert result["maintenance_s"] == 0


def test_maintenance_is_logged_on_the_device_and_in_the_registry(board, provisioned,
                                                                 hil_fleet):
    dev = provisioned("water_meter")
    granted = dev.open_maintenance(minutes=1)
    assert granted == {"minutes": 1, "seconds": 60}
    logs = [text for _, _, text in dev.fetch_logs()]
    assert any(t.startswith("maintenance opened for 1 min") for t in logs), logs
    assert dev.command("diag")["maintenance_s"] > 50


def test_maintenance_refuses_another_device_id_and_bad_lengths(board, provisioned):
    dev = provisioned("water_meter")
    for args, why in (({"minutes": 5, "device": "wm-someone-else"}, "another device"),
                      ({"minutes": 0, "device": dev.id}, "minutes must be"),
                      ({"minutes": 61, "device": dev.id}, "minutes must be"),
                      ({"minutes": True, "device": dev.id}, "minutes must be"),
                      ({"device": dev.id}, "minutes must be")):
        with pytest.raises(ProtocolError) as info:
            dev.session.request(C.COMMAND, {C.K_NAME: "maintenance", C.K_ARGS: args},
                                expect=C.COMMAND_RESULT)
        assert info.value.code == C.E_BAD_REQUEST and why in str(info.value)
    dev.close()
    said = attack(board.url)
    assert b"raw REPL" not in said and b"PWN" not in said, said


def test_cli_refuses_a_window_out_of_range(board, fleet_home, capsys):
    code, _, err = run(capsys, "maintenance", board.url, "--minutes", "90")
    assert code == 2 and "1..60 minutes" in err


def test_the_bench_strap_opens_the_repl_for_one_boot(board, world, fleet_home, capsys):
    provision(board, capsys)
    world.set(maint_strap=True)
    board.reset()
    until_up(board)
    opened = mpremote(board.url, "exec", "print(6*7)")
    assert opened.returncode == 0 and "42" in opened.stdout, opened.stderr
    world.set(maint_strap=False)
    board.reset()
    until_up(board)
    said = attack(board.url)
    assert b"raw REPL" not in said and b"PWN" not in said, said
