"""The real-board HALs (boards/hal_esp32.py, hal_rp2040.py on hal_machine.py) inside the real
MicroPython VM, against strict shims of each port's `machine` (tests/firmware/shims/<port>/,
written from the ports' C sources): reset causes and the firmware's reset record, light
sleep between tasks with the wake sources armed, the ESP32 flow counter in PCNT hardware
across its 16-bit resets, and the radio on while the ESP32 draws key material.

Each test boots the HAL once or more on one flash directory (mounted at "/", as littlefs
is on a board); what survives a reset (the cause the next boot reads) is the shim's state.
"""
import json
import shutil

from edgekit.paths import BOARDS_DIR
from edgekit.testing import mp

from pathlib import Path

SHIMS = Path(__file__).parent / "shims"
HAL = {"esp32": "hal_esp32", "rp2": "hal_rp2040"}
BOARD = {"esp32": "esp32", "rp2": "rp2040"}

_PRELUDE = r"""
import os, sys


class Flash(os.VfsPosix):
    # VfsPosix(root) renames one absolute path onto another through one shared buffer
    # (ENOENT; boards/emu_launch.py has the same fix); littlefs on a board has no such bug.
    def rename(self, old, new):
        return super().rename(old.lstrip("/"), new)


os.umount("/")
os.mount(Flash(%(root)r), "/")
os.mount(os.VfsPosix(%(boards)r), "/boards", readonly=True)
os.mount(os.VfsPosix(%(shims)r), "/shims", readonly=True)
os.chdir("/")
sys.path[:] = ["/shims/%(port)s", "/shims/common", "/boards"]
import json, shimcore as C, time
import %(hal)s as hal
import hal_machine


class FakeLink:
    # The UART as the HAL sees it awake: nothing received (bytes that woke a light sleep
    # are lost); polling passes virtual time.
    def any(self):
        return False

    def poll_ms(self, ms):
        time.sleep_ms(ms)
        return False


hal_machine.link = FakeLink()
out = {}
try:
"""

_POSTLUDE = r"""
except C.Reset as exc:
    out["reset"] = exc.args[0]
out["log"] = C.state["log"]
C.state["log"] = []
C.save()
print(json.dumps(out))
"""


def boot(root, port, body, cause=None, board=None):
    """One boot of the board: run `body` (indented under try:) with the HAL imported."""
    root.mkdir(exist_ok=True)
    shutil.copy(BOARDS_DIR / f"{board or BOARD[port]}.json", root / "board.json")
    state = root / ".shim.json"
    if cause is not None:
        st = json.loads(state.read_text()) if state.exists() else {}
        st["cause"] = cause
        state.write_text(json.dumps(st))
    code = _PRELUDE % {"root": str(root), "boards": str(BOARDS_DIR), "shims": str(SHIMS),
                       "port": port, "hal": HAL[port]}
    code += "\n".join("    " + ln for ln in body.strip("\n").splitlines()) + _POSTLUDE
    # The shims and HALs compile from source in this VM (boards run them frozen): more heap
    # than a board's, which these behaviour tests do not measure.
    return mp.run_json(code, timeout=300, heap="256K")


def calls(out, name):
    return [e[1:] for e in out["log"] if e[0] == name]


# --- reset causes and the reset record ------------------------------------------------------
def test_rp2040_firmware_reset_reads_as_hard_not_watchdog(tmp_path):
    first = boot(tmp_path, "rp2", 'hal.reset("ota_install")', cause=1)
    assert first["reset"] == 3                    # machine.reset() = watchdog_reboot()
    after = boot(tmp_path, "rp2", 'out["c"] = [hal.reset_cause(), hal.reset_reason()]')
    assert after["c"] == ["hard", "ota_install"]
    # The record explained one boot: a watchdog reset after it is a watchdog again.
    again = boot(tmp_path, "rp2", 'out["c"] = [hal.reset_cause(), hal.reset_reason()]', cause=3)
    assert again["c"] == ["watchdog", None]


def test_rp2040_deep_sleep_wake_reads_as_deepsleep(tmp_path):
    first = boot(tmp_path, "rp2", "hal.deep_sleep(60000)", cause=1)
    assert calls(first, "deepsleep") == [[60000]]
    after = boot(tmp_path, "rp2", 'out["c"] = hal.reset_cause()')
    assert after["c"] == "deepsleep"


def test_rp2040_power_on_ignores_a_stale_record(tmp_path):
    boot(tmp_path, "rp2", 'hal.reset("reboot")', cause=1)
    # The supply failed before the reset happened: the chip reads power-on.
    after = boot(tmp_path, "rp2", 'out["c"] = [hal.reset_cause(), hal.reset_reason()]',
                 cause=1)
    assert after["c"] == ["power_on", None]


def test_esp32_reset_reason_and_port_causes(tmp_path):
    boot(tmp_path, "esp32", 'hal.reset("reboot")', cause=1)
    after = boot(tmp_path, "esp32", 'out["c"] = [hal.reset_cause(), hal.reset_reason()]')
    assert after["c"] == ["hard", "reboot"]
    # A HARD_RESET nobody recorded is a panic: the cause stays, no reason is invented.
    panic = boot(tmp_path, "esp32", 'out["c"] = [hal.reset_cause(), hal.reset_reason()]')
    assert panic["c"] == ["hard", None]
    seen = {}
    for code, want in ((1, "power_on"), (3, "watchdog"), (4, "deepsleep"), (5, "soft"),
                       (0, "hard")):
        seen[code] = boot(tmp_path, "esp32", 'out["c"] = hal.reset_cause()', cause=code)["c"]
        assert seen[code] == want, (code, seen)


def test_deep_sleep_zero_sleeps_until_reset_on_both_ports(tmp_path):
    # deepsleep(0) is a 0 ms timer on both ports (the RP2040 resets at once); no argument
    # is "until reset".
    for port in ("esp32", "rp2"):
        out = boot(tmp_path / port, port, "hal.deep_sleep(0)", cause=1)
        assert calls(out, "deepsleep") == [[None]]


# --- light sleep -----------------------------------------------------------------------------
def test_esp32_wait_light_sleeps_with_the_uart_and_wake_inputs_armed(tmp_path):
    tamper = json.loads((BOARDS_DIR / "esp32.json").read_text())["pins"]["tamper"]["pin"]
    out = boot(tmp_path, "esp32", r"""
hal.wake_on("tamper")
t0 = time.ticks_ms()
out["idle"] = hal.wait(5000)
C.schedule(time.ticks_ms() + 1000, %d, 0)      # a magnet on the housing
out["woke"] = hal.wait(5000)
out["wakes"] = list(hal.wakes())
out["held"] = hal.wait(3000)                   # the magnet stays: no instant re-wake
out["power"] = hal.power_stats()
""" % tamper, cause=1)
    sleeps = calls(out, "lightsleep")
    assert out["idle"] is False and sleeps[0][0] == 5000
    assert 3 in sleeps[0][1] and tamper in sleeps[0][1]    # UART RX and tamper wake on low
    assert out["woke"] is True and out["wakes"] == ["tamper"]
    held = sleeps[-1]
    assert out["held"] is False and held[0] == 3000
    assert tamper not in held[1] and tamper in held[2]     # armed for its release (ext1)
    assert out["power"]["sleeps"] == len(sleeps) and out["power"]["asleep_ms"] >= 8000


def test_esp32_link_wake_keeps_the_board_awake_for_the_hosts_resend(tmp_path):
    out = boot(tmp_path, "esp32", r"""
C.schedule(time.ticks_ms() + 500, 3, 0)        # a start bit on RX: the host talks
C.schedule(time.ticks_ms() + 501, 3, 1)
out["w1"] = hal.wait(4000)
out["n1"] = len([e for e in C.state["log"] if e[0] == "lightsleep"])
out["w2"] = hal.wait(4000)                     # within the linger: polled, awake
out["n2"] = len([e for e in C.state["log"] if e[0] == "lightsleep"])
hal.wait(10000)                                # the linger ends: asleep again
out["n3"] = len([e for e in C.state["log"] if e[0] == "lightsleep"])
out["power"] = hal.power_stats()
""", cause=1)
    assert out["n1"] == 1 and out["n2"] == 1 and out["n3"] == 2
    assert out["power"]["early_wakes"] == 1
    assert out["power"]["awake_ms"] >= 12000 - 600


def test_rp2040_wait_light_sleeps_with_pin_irqs_armed_and_no_uart_rx(tmp_path):
    """The Pico W's link is USB CDC (boards/rp2040.json; the stock build's REPL): no UART
    RX pin is armed around light sleep (GPIO1 is not the link); USB traffic ends
    lightsleep(ms) by itself (ports/rp2/modmachine.c keeps USB clocked while mounted)."""
    out = boot(tmp_path, "rp2", r"""
hal.wake_on("lid")
out["idle"] = hal.wait(3000)
C.schedule(time.ticks_ms() + 700, 11, 0)       # the lid opens
out["woke"] = hal.wait(3000)
out["wakes"] = list(hal.wakes())
""", cause=1)
    sleeps = calls(out, "lightsleep")
    assert out["idle"] is False and sleeps[0][0] == 3000
    assert 11 in sleeps[0][1] and 1 not in sleeps[0][1]    # the lid has an IRQ, GPIO1 none
    irqs = calls(out, "irq")
    assert [11, True, 4, True] in irqs                 # the lid: hard IRQ, falling edge
    assert not [irq for irq in irqs if irq[0] == 1]    # no UART RX wake: the link is USB
    assert out["woke"] is True and out["wakes"] == ["lid"]


# --- buses -----------------------------------------------------------------------------------
def test_esp32_uart1_is_receive_only_where_the_definition_names_no_tx(tmp_path):
    """The WROVER's uart1 (esp32_wrover.json: GPIO16/17 are its PSRAM's) has only an RX pin:
    the HAL passes tx=-1, which the port leaves unrouted, never its default TX pin (GPIO5
    on a SPIRAM build: card_present's); the WROOM-32's gets both pins."""
    body = r"""
out["scan"] = hal.sensor_read("scanner")
"""
    wrover = boot(tmp_path / "wrover", "esp32", body, cause=1, board="esp32_wrover")
    wroom = boot(tmp_path / "wroom", "esp32", body, cause=1)
    assert wrover["scan"] is None and wroom["scan"] is None
    assert calls(wrover, "uart") == [[1, 9600, -1, 39]]
    assert calls(wroom, "uart") == [[1, 9600, 17, 16]]


# --- flow pulses -----------------------------------------------------------------------------
def test_esp32_flow_pulses_counted_by_pcnt_across_busy_writes_and_wraps(tmp_path):
    out = boot(tmp_path, "esp32", r"""
out["start"] = hal.pulse_count("flow")
now = time.ticks_ms()
C.pulses(34, 70000, now + 10, 2, 1)            # 70,000 pulses: two 16-bit resets
C.busy(35)                                     # a UART write: soft IRQs wait
time.sleep_ms(140100)
out["count"] = hal.pulse_count("flow")
# A pulse while the board is in light sleep (PCNT clock-gated): counted on the wake.
C.schedule(time.ticks_ms() + 300, 34, 0)
C.schedule(time.ticks_ms() + 900, 34, 1)
hal.wait(2000)
out["asleep"] = hal.pulse_count("flow")
""", cause=1)
    init = calls(out, "pcnt_init")
    assert init[0][:6] == [0, None, 0, 0, -32000, 32000]
    assert [0, 34, 0, 1, -32000, 32000, 1023] in init   # falling edges, max glitch filter
    assert out["start"] == 0 and out["count"] == 70000
    assert out["asleep"] == 70001


def test_rp2040_flow_pulses_counted_at_the_edge_while_the_vm_is_busy(tmp_path):
    out = boot(tmp_path, "rp2", r"""
hal.pulse_count("flow")
C.pulses(2, 10, time.ticks_ms() + 1, 5, 1)     # 10 pulses, 5 ms apart
C.busy(60)                                     # inside one blocking 60 ms write
out["count"] = hal.pulse_count("flow")
""", cause=1)
    assert out["count"] == 10


# --- key material ----------------------------------------------------------------------------
def test_esp32_key_material_drawn_with_the_radio_on_then_restored(tmp_path):
    out = boot(tmp_path, "esp32", r"""
out["n"] = len(hal.random_bytes(32))
""", cause=1)
    assert out["n"] == 32
    trail = [e for e in out["log"] if e[0] in ("wlan_active", "urandom")]
    assert trail == [["wlan_active", True], ["urandom", 32, True], ["wlan_active", False]]
