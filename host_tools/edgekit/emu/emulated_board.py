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

from edgekit.board_defs import link_baud, parse_size
from edgekit.emu.rom import frozen_allowance
from edgekit.emu import frozen_rom
from edgekit.emu import hal_ops
from edgekit.emu.clock import Clock
from edgekit.emu.netpath import NetPath
from edgekit.emu.uart import Uart
from edgekit.emu.repl import ReplFilter
from edgekit.emu.vm import VM
from edgekit.emu.world import NET_LATENCY, NET_LOSS, HardwareFault
from edgekit.emu.worlds import make_world

# json.dumps with separators builds a new encoder at every call; a board answers once a
# wake, tens of thousands of times a simulated month. The same bytes, one encoder.
_encode = json.JSONEncoder(separators=(",", ":")).encode

SOFT_REBOOT = b"MPY: soft reboot\r\n"
# Paused time: a board whose VM spends this much CPU without sleeping is treated as hung and
# time moves on (so a starved watchdog fires). CPU time, not wall time: a board slowed by a
# loaded machine, or writing a long report at the UART's pace, is busy, not hung, and its
# watchdog counts simulated time only (a wall-time limit reset healthy boards under load).
_BUSY_CPU_S = 1.0
_BUSY_WALL_S = 20.0     # ... and a backstop for a VM that makes slow progress forever
_IDLE_CHECKS = 3        # checks 10 ms apart with no progress at all: idle at a prompt
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
        self.rom = frozen_rom.DEFAULT   # which VM runs the firmware (edgekit.emu.frozen_rom)
        self.rng = random.Random(seed)
        self.clock = Clock(time_mode, speed)
        self.world = make_world(kind, board_def)
        # The board's TCP connections cross this relay (boards/emu_socket.py): the world's
        # net_latency_ms and net_loss apply to them.
        self.net = NetPath(loop, self._net_conditions, seed)
        self.uart = Uart(loop, link_baud(board_def),
                         tty_link=os.path.join(self.state_dir, "tty"), port=port)
        self.uart.on_output = self._filter_output
        self.uart.on_interrupt = self._interrupt
        self.uart.on_delivered = self.input_arrived
        # Paused time stands still while the firmware runs, so a frame's time on the wire is
        # not simulated there; pacing it to the baud rate in wall time only slowed soaks (an
        # air node's 32 KB of pushed telemetry a simulated day cost 2.8 s of waiting).
        self.uart.tx_unpaced = lambda: self.clock.mode == "paused"
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
        self.pulse_leased = {}
        self.lease_granted = []
        self.pending = None         # parked sleep/wait: (req_id, op)
        self.watch = []             # reads prefetched with each wake in paused time (hal_ops)
        self.side_msgs = 0          # side-channel requests handled (progress, for _busy)
        self.side_replies = 0       # of which answered: the VM waited a round trip
        self.parks = 0              # times the board went to sleep or off (a wake ended)
        self.lease_wakes = 0        # wakes the VM ran on a lease, without a round trip
        # Leases in paused time (hal_ops.lease): on unless EDGEKIT_EMU_LEASE=0 (the bench
        # measures both ways; a suspected lease fault is ruled in or out so).
        self.lease_on = os.environ.get("EDGEKIT_EMU_LEASE", "1") != "0"
        self._advancing = None      # paused time: (target world ms, future) of an advance
        self._kicked = False
        self._in_side = False
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

    def _net_conditions(self):
        self.world.advance_to(self.clock.now())        # a CSV may drive them
        return self.world.values[NET_LATENCY], self.world.values[NET_LOSS]

    def _default_uid(self, n):
        # Stable per flash directory: the same "chip" every time this flash is booted.
        import hashlib
        return hashlib.sha256(os.path.realpath(self.flash_dir).encode()).digest()[:n]

    # --- power and resets ---------------------------------------------------------------
    def power_on(self, cause="power_on", start="main"):
        if self.stopped:
            return
        soft = cause == "soft"
        hal_ops.maint_stop(self)    # a maintenance guard's timer stops at any reset
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
        self.watch = []
        # A reset forgets pin IRQs: the new firmware arms its wake sources again.
        self.wake_armed = {}
        self.woken = []
        self.clock.cancel("wakecheck")
        self._wakecheck_at = None
        self.repl.reboot(start == "raw")
        self.clock.wake()
        self.world.advance_to(self.clock.now())
        self.pulse_leased = {}      # counter -> the most a lease let the VM count (hal_ops)
        self.lease_granted = []     # the pulse steps of the last lease granted (hal_ops)
        self.pulse_offset = {role: self.world.pulse_total(role)
                             for role, pin in self.board["pins"].items()
                             if pin["mode"] == "pulse"}
        self.state = "booting"
        self._settled.clear()
        self.vm = VM(self.loop, heap=self.vm_heap(), flash_dir=self.flash_dir,
                     rom_dir=self.rom_dir, start=start, bare=self.bare,
                     fs_size=self.board["flash"]["fs_size"],
                     block_size=self.board["flash"]["block_size"], on_exit=self._vm_exited,
                     command=frozen_rom.vm_command(self.rom))
        self.uart.attach_vm(self.vm.master)
        self.loop.add_reader(self.vm.side.fileno(), self._side_readable)
        self._arm()

    def vm_heap(self):
        """Board heap (scaled by heap_scale for headroom tests) + the frozen-module allowance
        (edgekit.emu.rom): the firmware's data gets exactly the board's figure."""
        if self.bare:
            return str(self.board["heap"])
        if self.rom == frozen_rom.FROZEN32:
            return frozen_rom.exact_heap(self.board, self.heap_scale)
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
            self.parks += 1
            self._settled.set()
            then()
            self._kick()
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

    def stop(self, reap=True):
        """Power off. reap=False: return the dying VM (or None) for the caller to reap, so
        many boards stop concurrently (Supervisor.stop_many)."""
        self.stopped = True
        if self._timer:
            self._timer.cancel()
        vm = self.vm
        self.kill(lambda: None)
        self.uart.close()
        self.net.close()
        if vm is not None and reap:
            try:
                vm.proc.wait(timeout=2)     # reap now: SIGKILL takes milliseconds
            except Exception:  # noqa: BLE001 - the exit watcher reaps it later anyway
                pass
        return vm

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
        self.side_msgs += len(lines)
        self._in_side = True
        try:
            self._side_lines(vm, lines)
        finally:
            self._in_side = False
        if self._kicked:
            self._step()        # the board parked: the advance's next step, on this turn

    def _side_lines(self, vm, lines):
        for line in lines:
            if not line.strip():
                continue
            try:
                msg = json.loads(line)
                req_id, op, args = msg[0], msg[1], msg[2:]
                if req_id < 0:      # fed before this request (hal_emu.wdt_feed, paused time)
                    req_id = -req_id
                    hal_ops.handle(self, 0, "wdt_feed", ())
            except (ValueError, IndexError, TypeError):
                self.last_error = f"bad side-channel line {line[:80]!r}"
                continue
            try:
                hal_ops.handle(self, req_id, op, args)
            except hal_ops.Refused as exc:
                self.reply(req_id, None, str(exc))
            if self.vm is not vm:       # the request killed or restarted the VM
                return

    def reply(self, req_id, value=None, error=None, extra=None, lease=None):
        if not req_id or self.vm is None:
            return
        self.side_replies += 1
        msg = [req_id, self.clock.device_ms(), value]
        if error is not None or extra is not None or lease is not None:
            msg.append(error)
        if extra is not None or lease is not None:
            msg.append(extra)
        if lease is not None:
            msg.append(lease)
        self._send_side(msg)

    def push_clock(self):
        """Tell the VM its clock, mode, rate and RTC, and that the world may have changed:
        hal_emu reads its clock locally between answers (in paused time it is frozen while
        the board runs) and drops its prefetched reads. Sent when any of these changes
        while the VM is not parked (a parked VM gets the time with its wake-up)."""
        # What a lease let the VM count holds until the world changes: a new K-factor set by
        # a test moves every count (hal_ops.lease).
        self.pulse_leased = {}
        if self.vm is None:
            return
        self._send_side([0, self.clock.device_ms(), dict(self.clock_info())])

    def clock_info(self):
        """The device's clock as the VM keeps it: mode, rate, and its RTC as unix ms at a
        device ms and the RTC's error against the device clock in parts per 10**9 (hal_emu
        extrapolates from these)."""
        c = self.clock
        rate = 1.0 + c.ppm * 1e-6
        if self.rtc is None:
            rtc_ms, rtc_dev = None, 0
        else:
            rtc_ms, at = self.rtc
            rtc_dev = int((at - c.boot_world) * rate)
            rtc_ms = int(rtc_ms)
        k = (1.0 + (c.ppm + c.rtc_ppm) * 1e-6) / rate
        return {"mode": c.mode, "rate": rate, "rtc_ms": rtc_ms, "rtc_dev": rtc_dev,
                "rtc_ppb": int(round((k - 1.0) * 1e9)),
                # flash operations ask (a round trip) only while a brown-out is armed
                "flash_sync": self.brownout_after is not None}

    def _send_side(self, msg):
        body = _encode(msg).encode()
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
        self.parks += 1
        self._settled.set()
        self._arm()
        self._kick()

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
        extra = hal_ops.prefetch(self)
        self.reply(req_id, value, extra=extra, lease=hal_ops.lease(self, extra))
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
        # A VM that runs (not parked) while paused time jumps must be told: it reads its
        # clock locally and would not see the jump until its next request.
        vm = self.vm if (self.pending is None and self.clock.mode == "paused") else None
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
        if vm is not None and vm is self.vm and self.pending is None:
            self.push_clock()

    def _progress(self):
        """What a VM that is doing anything changes: its CPU time, its side-channel requests,
        its UART output (written and not yet taken by the paced bridge, or taken)."""
        vm = self.vm
        return (vm.cpu_seconds(), self.side_msgs, self.uart.stats["tx"], vm.unsent_output(),
                len(self.uart.to_vm))

    # Paused time, event by event. The step that ends one wake and starts the next runs on the
    # loop turn after the board parks (no coroutine hop per wake: a provisioned meter wakes
    # every simulated minute); the coroutine only watches for a board that stops parking.
    def _kick(self):
        if self._advancing is not None and not self._kicked:
            self._kicked = True
            if not self._in_side:       # else _side_readable steps when it is done
                self.loop.call_soon(self._step)

    def _step(self):
        self._kicked = False
        while (self._advancing is not None and not self.stopped
               and self.state in ("asleep", "off")):
            self._next_event()

    def _next_event(self):
        """World time moves to the next thing that happens by itself, or to the target."""
        target = self._advancing[0]
        nd = self.clock.next_deadline()
        if nd is None or nd > target:
            self._finish_advance()
        else:
            self.fire(nd)

    def _finish_advance(self):
        target, done = self._advancing
        self._advancing = None
        vm = self.vm if self.pending is None else None
        self.clock.jump(target)
        self.world.advance_to(self.clock.now())
        if vm is not None and vm is self.vm:
            self.push_clock()
        if not done.done():
            done.set_result(None)

    async def _busy(self, done):
        """Wait while the board runs; return when the advance is done, or the board idles at
        a prompt (True), or looks hung (False): see _BUSY_CPU_S."""
        parks, vm, cpu0, wall0, last, still = None, None, 0.0, 0.0, None, 0
        while not done.done() and not self.stopped:
            await asyncio.wait([done], timeout=0.01)
            if done.done() or self.stopped:
                break
            if self.state not in ("running", "booting") or self.vm is None:
                still = 0
                continue
            now = self._progress()
            if self.net.in_flight():
                # Waiting for bytes its network path holds (latency, a retransmission): a
                # round trip, not a hang. The wall backstop still applies.
                cpu0 = now[0]
            if parks != self.parks or vm is not self.vm:
                # a new wake: its own CPU and wall budget
                parks, vm, cpu0, wall0, last, still = (self.parks, self.vm, now[0],
                                                       self.loop.time(), None, 0)
            # Idle at a prompt: asleep in the kernel, nothing moved for three checks. A VM
            # between two round trips is asleep in the kernel too: a state letter alone
            # misjudged busy boards idle and fired their watchdog.
            still = still + 1 if now == last and vm.cpu_state() == "S" else 0
            last = now
            if still >= _IDLE_CHECKS:
                return True
            if now[0] - cpu0 > _BUSY_CPU_S or self.loop.time() - wall0 > _BUSY_WALL_S:
                return False
        return True

    async def advance(self, seconds):
        """Paused mode: run the board through `seconds` of simulated time, event by event."""
        while self._advancing is not None:          # one advance at a time per board
            await asyncio.wait([self._advancing[1]])
        done = self.loop.create_future()
        self._advancing = (self.clock.now() + seconds * 1000.0, done)
        try:
            self._step()
            while not done.done() and not self.stopped:
                await self._busy(done)
                if done.done() or self.stopped:
                    break
                # Idle at a prompt, or hung: time moves on without it (a starved watchdog
                # fires at its own simulated instant).
                self._next_event()
                self._step()
        finally:
            if self._advancing is not None and self._advancing[1] is done:
                self._advancing = None
        return self.clock.now() / 1000.0

    # --- RTC ------------------------------------------------------------------------------
    def rtc_ms(self, world=None):
        """The RTC's unix ms at world time `world` (None: never set)."""
        if self.rtc is None:
            return None
        unix_ms, at = self.rtc
        world = self.clock.now() if world is None else world
        # The crystal's error and the RTC's own (its 32 kHz crystal or RC oscillator)
        return unix_ms + (world - at) * (1.0 + (self.clock.ppm + self.clock.rtc_ppm) * 1e-6)

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
            "side_msgs": self.side_msgs, "side_replies": self.side_replies, "parks": self.parks,
            "lease_wakes": self.lease_wakes,
            "repl": self.repl.mode, "drift_ppm": self.clock.ppm,
            "rtc_drift_ppm": self.clock.rtc_ppm, "wdt_ms": self.wdt_ms,
            "flash_ops": self.flash_ops, "uid": self.uid.hex(),
            "wake_inputs": sorted(self.wake_armed), "wakeups": self.wakeups,
            "rom": self.rom, "heap": self.vm_heap(), "net": self.net.snapshot(),
        }
