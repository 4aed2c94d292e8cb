"""One emulated board: its VM runs, its clock, its world, its UART and its faults.

Lifecycle, as a real port behaves:
  power-on / reset / watchdog / brown-out / deep-sleep wake: ROM banner (ESP32 boards),
      fresh VM running boot.py then main.py; ticks restart at 0.
  soft reboot (Ctrl-D at the friendly REPL, sys.exit in main.py): "MPY: soft reboot", fresh
      VM on the same flash, ticks, RTC and watchdog keep running.
  Ctrl-D in the raw REPL: the unix VM exits; we print "MPY: soft reboot" and bring a fresh
      VM back into the raw REPL (boot.py only), which is what mpremote waits for.
All methods run on the supervisor's event loop; HAL requests arrive on the side channel
(format in boards/HAL.md) and are answered from here.
"""
import asyncio
import errno
import json
import math
import os
import random
import signal

from edgekit.emu.boards import parse_size
from edgekit.emu.rom import frozen_allowance
from edgekit.emu import hal_ops
from edgekit.emu.clock import Clock
from edgekit.emu.link import Uart
from edgekit.emu.repl import ReplFilter
from edgekit.emu.vm import VM
from edgekit.emu.world import HardwareFault
from edgekit.emu.worlds import make_world

SOFT_REBOOT = b"MPY: soft reboot\r\n"
_BUSY_GRACE_S = 1.0     # paused mode: a board busy this long (wall) is treated as hung
_KEEP_RTC = ("soft", "hard", "watchdog", "deepsleep")


class Board:
    def __init__(self, loop, *, board_id, board_def, kind, time_mode, speed, flash_dir,
                 rom_dir, state_dir, bare=False, port=0, seed=None, uid=None):
        self.loop = loop
        self.id = board_id
        self.board = board_def
        self.kind = kind
        self.flash_dir = str(flash_dir)
        self.rom_dir = str(rom_dir)
        self.state_dir = str(state_dir)
        self.bare = bare
        self.heap_scale = 1.0
        self.rng = random.Random(seed)
        self.clock = Clock(time_mode, speed)
        self.world = make_world(kind, board_def)
        self.uart = Uart(loop, board_def["link"]["baud"],
                         tty_link=os.path.join(self.state_dir, "tty"), port=port)
        self.uart.on_output = self._filter_output
        self.uart.on_interrupt = self._interrupt
        self.uart.on_delivered = self.input_arrived
        n = board_def.get("unique_id_len", 6)
        self.uid = uid or self._default_uid(n)
        self.vm = None
        self.state = "off"
        self.cause = "power_on"
        self.boots = 0
        self.resets = {}
        self.wdt_ms = None
        self.rtc = None             # (unix_ms, world_ms) when the RTC was last set
        self.brownout_after = None  # flash operations left before the cut
        self.flash_ops = 0
        self.pulse_offset = {}
        self.pending = None         # parked sleep/wait: (req_id, op)
        self.wake_armed = {}        # input role -> level last seen (hal.wake_on)
        self.woken = []             # roles that went active since the firmware last asked
        self.wakeups = 0            # waits ended by a wake input (info)
        self._wakecheck_at = None   # world time of the scheduled "wakecheck" event
        self.repl = ReplFilter()
        self._sigint_at = -1e9
        self._side_buf = b""
        self._on_death = None
        self._timer = None
        self._settled = asyncio.Event()
        self.stopped = False
        self.last_error = None

    def _default_uid(self, n):
        # Stable per flash directory: the same "chip" every time this flash is booted.
        import hashlib
        return hashlib.sha256(os.path.realpath(self.flash_dir).encode()).digest()[:n]

    # --- power and resets ---------------------------------------------------------------
    def power_on(self, cause="power_on", start="main"):
        if self.stopped:
            return
        soft = cause == "soft"
        if not soft:
            self.clock.boot()
            self.wdt_ms = None
            self.clock.cancel("wdt")
            banner = self.board.get("rom_banner", {}).get(cause)
            if banner:
                self.uart.send_to_host(banner.encode())
        if cause not in _KEEP_RTC:
            self.rtc = None
        self.cause = cause
        self.resets[cause] = self.resets.get(cause, 0) + 1
        self.boots += 1
        self.pending = None
        # A reset forgets pin IRQs: the new firmware arms its wake sources again.
        self.wake_armed = {}
        self.woken = []
        self.clock.cancel("wakecheck")
        self._wakecheck_at = None
        self.repl.reboot(start == "raw")
        self.clock.wake()
        self.world.advance_to(self.clock.now())
        self.pulse_offset = {role: self.world.pulse_total(role)
                             for role, pin in self.board["pins"].items()
                             if pin["mode"] == "pulse"}
        self.state = "booting"
        self._settled.clear()
        self.vm = VM(self.loop, heap=self.vm_heap(), flash_dir=self.flash_dir,
                     rom_dir=self.rom_dir, start=start, bare=self.bare,
                     fs_size=self.board["flash"]["fs_size"],
                     block_size=self.board["flash"]["block_size"], on_exit=self._vm_exited)
        self.uart.attach_vm(self.vm.master)
        self.loop.add_reader(self.vm.side.fileno(), self._side_readable)
        self._arm()

    def vm_heap(self):
        """Board heap (scaled by heap_scale for headroom tests) + the frozen-module allowance
        (edgekit.emu.rom): the firmware's data gets exactly the board's figure."""
        if self.bare:
            return str(self.board["heap"])
        allowance = frozen_allowance(self.rom_dir, self.kind)
        return str(int(parse_size(self.board["heap"]) * self.heap_scale) + allowance)

    def kill(self, then=None):
        """Cut the VM off now (no output drained); `then()` runs once it is gone."""
        vm = self.vm
        if vm is None or not vm.alive:
            if then:
                then()
            return
        then = then or (lambda: None)
        if self._on_death is not None:
            # A second cut while the first VM is still dying (SIGKILL is not instant on a
            # loaded host): the board comes back from the first, then loses power again.
            first = self._on_death
            self._on_death = lambda: (first(), self.kill(then))
            return
        self._on_death = then
        # Until the VM is reaped the board is neither asleep nor running: settle() must not
        # report the state it had before the cut.
        self.state = "dying"
        self._settled.clear()
        self._detach()
        vm.kill()

    def _detach(self):
        vm = self.vm
        if vm is None:
            return
        try:
            self.loop.remove_reader(vm.side.fileno())
        except (ValueError, OSError):
            pass
        self.uart.detach_vm()
        self.pending = None
        self._side_buf = b""

    def _vm_exited(self, returncode):
        vm = self.vm
        if self._on_death is not None:
            then, self._on_death = self._on_death, None
            vm.close()
            self.vm = None
            self.state = "off"
            self._settled.set()
            then()
            return
        # The VM ended by itself: Ctrl-D at a REPL or sys.exit (a soft reboot on a port), or
        # it crashed (a signal we did not send: the board resets as after a panic).
        tail = self._filter_output(self.uart.drain_vm())
        self.uart.send_to_host(tail)
        self._detach()
        vm.close()
        self.vm = None
        if self.stopped:
            return
        # SIGINT can land just after the VM disarmed it (code finished between our check
        # and the kill): on a port that Ctrl-C would only have cancelled a line.
        interrupted = (returncode == -signal.SIGINT
                       and self.loop.time() - self._sigint_at < 1.0)
        if returncode < 0 and not interrupted:
            self.power_on("hard")
            return
        start = "raw" if self.repl.mode == "raw" else "main"
        self.uart.send_to_host(SOFT_REBOOT)
        self.power_on("soft", start)

    def powercut(self, off_s=0.0):
        """Power fails now; it comes back `off_s` simulated seconds later (cold boot)."""
        self.clock.cancel("powercut")

        def dead():
            if off_s <= 0:
                self.power_on("power_on")
                return
            self.clock.sleep(math.inf)
            self.clock.at(self.clock.now() + off_s * 1000.0, "power", self._power_back)
            self._arm()
        self.kill(dead)

    def _power_back(self):
        self.power_on("power_on")

    def schedule_powercut(self, at_s, off_s=0.0):
        self.clock.cancel("powercut")
        self.clock.at(self.clock.now() + at_s * 1000.0, "powercut",
                      lambda: self.powercut(off_s))
        self._arm()

    def reset(self, cause="hard"):
        self.kill(lambda: self.power_on(cause))

    def stop(self):
        self.stopped = True
        if self._timer:
            self._timer.cancel()
        vm = self.vm
        self.kill(lambda: None)
        self.uart.close()
        if vm is not None:
            try:
                vm.proc.wait(timeout=2)     # reap now: SIGKILL takes milliseconds
            except Exception:  # noqa: BLE001 - the exit watcher reaps it later anyway
                pass

    # --- UART output (edgekit.emu.repl) --------------------------------------------------
    def _filter_output(self, data):
        return self.repl.feed(data, self._enter_raw)

    def _enter_raw(self):
        if self.vm and self.vm.alive:
            os.write(self.vm.master, b"\x01")

    def _interrupt(self):
        # Not while booting: until hal says hello the process is still the CPython launcher,
        # whose own SIGINT handler would print a CPython traceback on the UART.
        vm = self.vm
        if vm is not None and vm.alive and self.state != "booting" and vm.sigint_armed():
            vm.interrupt()
            self._sigint_at = self.loop.time()
            return True
        return False

    # --- side channel ---------------------------------------------------------------------
    def _side_readable(self):
        vm = self.vm
        try:
            data = vm.side.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            try:
                self.loop.remove_reader(vm.side.fileno())
            except (ValueError, OSError):
                pass
            return
        buf = self._side_buf + data
        lines = buf.split(b"\n")
        self._side_buf = lines.pop()
        for line in lines:
            if not line.strip():
                continue
            try:
                msg = json.loads(line)
                req_id, op, args = msg[0], msg[1], msg[2:]
            except (ValueError, IndexError, TypeError):
                self.last_error = f"bad side-channel line {line[:80]!r}"
                continue
            try:
                hal_ops.handle(self, req_id, op, args)
            except hal_ops.Refused as exc:
                self.reply(req_id, None, str(exc))
            if self.vm is not vm:       # the request killed or restarted the VM
                return

    def reply(self, req_id, value=None, error=None):
        if not req_id or self.vm is None:
            return
        msg = [req_id, self.clock.device_ms(), value]
        if error is not None:
            msg.append(error)
        body = json.dumps(msg, separators=(",", ":")).encode()
        try:
            self.vm.side.send(b"%04x" % len(body) + body)
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.EAGAIN):
                raise

    # --- sleeping and the timeline ----------------------------------------------------------
    def park(self, req_id, op, device_ms):
        until = self.clock.world_after_device_ms(device_ms)
        self.pending = (req_id, op)
        # Host bytes still in flight on the paced link: do not skip time past them.
        self.clock.hold = op == "wait" and bool(self.uart.to_vm)
        self.clock.sleep(until)
        self.state = "asleep"
        self._settled.set()
        self._arm()

    def input_arrived(self):
        if self.pending and self.pending[1] == "wait":
            self._wake(True)

    def _wake(self, value):
        req_id, _ = self.pending
        self.pending = None
        self.clock.hold = False
        self.clock.wake()
        self.state = "running"
        self._settled.clear()
        self.reply(req_id, value)
        self._arm()

    def _arm(self):
        if self._timer:
            self._timer.cancel()
            self._timer = None
        if self.stopped or self.clock.mode == "paused":
            return
        nd = self.clock.next_deadline()
        if nd is None:
            return
        delay = self.clock.wall_delay(nd)
        if delay is None:
            return
        self._timer = self.loop.call_later(delay, self._on_timer)

    def _on_timer(self):
        self._timer = None
        nd = self.clock.next_deadline()
        if nd is not None and (self.clock.rate() == math.inf
                               or self.clock.now() >= nd - 0.5):
            self.fire(nd)
        self._arm()

    # --- wake inputs (hal.wake_on): an edge to active ends a wait() -------------------------
    def _level(self, role):
        try:
            return bool(self.world.read("input", role))
        except HardwareFault:
            return False

    def arm_wake(self, role):
        self.world.advance_to(self.clock.now())
        if role not in self.wake_armed:
            self.wake_armed[role] = self._level(role)
        self._next_wake_check()

    def check_wakes(self):
        """After anything that can change an input (a test setting the world, a driven CSV
        row, a scheduled event): latch armed inputs that went active; wake a wait."""
        if not self.wake_armed or self.vm is None:
            return
        self.world.advance_to(self.clock.now())
        for role, was in self.wake_armed.items():
            level = self._level(role)
            if level and not was and role not in self.woken:
                self.woken.append(role)
            self.wake_armed[role] = level
        if self.woken and self.pending and self.pending[1] == "wait":
            self.wakeups += 1
            self._wake(True)
        self._next_wake_check()

    def _next_wake_check(self):
        # Continuous models change inputs only at step times (CSV rows): check there, so a
        # row that sets an alarm during a long sleep wakes the board at that instant. This
        # runs after every event while inputs are armed: reschedule only when it moved.
        t = self.world.next_change() if self.wake_armed else None
        if t is not None:
            t = max(t, self.clock.now())
        if t == self._wakecheck_at:
            return
        self.clock.cancel("wakecheck")
        self._wakecheck_at = t
        if t is not None:
            self.clock.at(t, "wakecheck", self._wakecheck)
            self._arm()

    def _wakecheck(self):
        self._wakecheck_at = None       # this event has fired
        self.check_wakes()

    def fire(self, t):
        """World time reaches `t`: events due run, a sleep ending by then completes."""
        self.clock.jump(t)
        self.world.advance_to(self.clock.now())
        ev = self.clock.next_event()
        while ev is not None and ev[0] <= t:
            self.clock.pop_event()
            ev[3]()
            ev = self.clock.next_event()
        if self.wake_armed:
            self.check_wakes()
        if (self.pending and self.clock.asleep_until is not None
                and self.clock.asleep_until <= t):
            self._wake(False)

    async def settle(self):
        """Wait until the board sleeps, is off, or idles at a prompt (paused-mode stepping)."""
        deadline = self.loop.time() + _BUSY_GRACE_S
        idle_checks = 0
        while not self.stopped:
            if self.state in ("asleep", "off"):
                return True
            if self.state in ("running", "booting") and not self.uart.to_vm and self.vm:
                idle_checks = idle_checks + 1 if self.vm.cpu_state() == "S" else 0
                if idle_checks >= 3:
                    return True
            if self.loop.time() > deadline:
                return False
            try:
                await asyncio.wait_for(self._settled.wait(), 0.01)
            except asyncio.TimeoutError:
                pass
        return True

    async def advance(self, seconds):
        """Paused mode: run the board through `seconds` of simulated time, event by event."""
        target = self.clock.now() + seconds * 1000.0
        while not self.stopped:
            await self.settle()
            nd = self.clock.next_deadline()
            if nd is None or nd > target:
                break
            self.fire(nd)
            await asyncio.sleep(0)
        self.clock.jump(target)
        self.world.advance_to(self.clock.now())
        return self.clock.now() / 1000.0

    # --- RTC ------------------------------------------------------------------------------
    def rtc_ms(self, world=None):
        """The RTC's unix ms at world time `world` (None: never set)."""
        if self.rtc is None:
            return None
        unix_ms, at = self.rtc
        world = self.clock.now() if world is None else world
        return unix_ms + (world - at) * (1.0 + self.clock.ppm * 1e-6)

    def set_rtc(self, unix_s):
        self.rtc = None if unix_s is None else (float(unix_s) * 1000.0, self.clock.now())

    # --- status -----------------------------------------------------------------------------
    def info(self):
        rtc = self.rtc_ms()
        return {
            "id": self.id, "board": self.board["name"], "kind": self.kind,
            "url": f"socket://127.0.0.1:{self.uart.port}", "pty": self.uart.pty_path,
            "pty_link": self.uart.tty_link, "flash": self.flash_dir, "bare": self.bare,
            "time": self.clock.mode, "speed": self.clock.speed, "state": self.state,
            "pid": self.vm.pid if self.vm else None, "plugged": self.uart.plugged,
            "sim_s": round(self.clock.now() / 1000.0, 3),
            "device_ms": self.clock.device_ms(), "rtc": None if rtc is None else rtc / 1000.0,
            "reset_cause": self.cause, "boots": self.boots, "resets": dict(self.resets),
            "repl": self.repl.mode, "drift_ppm": self.clock.ppm, "wdt_ms": self.wdt_ms,
            "flash_ops": self.flash_ops, "uid": self.uid.hex(),
            "wake_inputs": sorted(self.wake_armed), "wakeups": self.wakeups,
        }
