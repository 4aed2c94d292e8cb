"""The supervisor: hosts any number of boards on one asyncio loop.

Used in-process by `edgekit.emu.Emulator` (tests) and by the detached daemon behind the
`edgekit emu` CLI. Every public method runs on the loop's thread and returns plain data
(JSON-able), so the daemon can expose the same calls over its control socket.
"""
import fcntl
import os
import re
from pathlib import Path

from edgekit.emu.rom import build_rom
from edgekit.emu.emulated_board import Board
from edgekit.emu import frozen_rom
from edgekit.board_defs import load_board
from edgekit.emu.clock import MODES
from edgekit.emu.uart import NOISE_KINDS
from edgekit.errors import EdgekitError
from edgekit.paths import BOARDS_DIR, FIRMWARE_DIR, PROTOCOL_DIR

FLEET_SPEED = 60.0      # simulated seconds per wall second for a fleet in virtual time
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$")


class EmuError(EdgekitError):
    """A bad request to the emulator (unknown board id, bad value...)."""


class Supervisor:
    def __init__(self, loop, state_root):
        self.loop = loop
        self.root = Path(state_root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.boards = {}
        self._locks = {}
        self.rom = self._make_rom()
        self._raise_fd_limit()

    def _make_rom(self):
        # What emu_launch mounts read-only at /.frozen: the firmware compiled to .mpy, as a
        # board image freezes it (edgekit.emu.rom explains the heap accounting).
        return build_rom(self.root)

    @staticmethod
    def _raise_fd_limit():
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    # --- boards ---------------------------------------------------------------------------
    def _new_id(self, board_name):
        n = 1
        while (f"{board_name}-{n}" in self.boards
               or (self.root / "boards" / f"{board_name}-{n}").exists()):
            n += 1
        return f"{board_name}-{n}"

    def start(self, board="esp32", kind=None, time="virtual", speed=None, flash=None,
              bare=False, port=0, seed=None, id=None, drift_ppm=0.0, rtc=None, heap_scale=1.0,
              rtc_drift_ppm=None, rom=frozen_rom.DEFAULT):
        board_def = load_board(board)
        try:
            frozen_rom.check(rom)
        except frozen_rom.RomError as exc:
            raise EmuError(str(exc)) from None
        if time not in MODES:
            raise EmuError(f"time mode {time!r}: use one of {', '.join(MODES)}")
        if speed is not None and float(speed) <= 0:
            raise EmuError("speed must be > 0 simulated seconds per wall second")
        board_id = id or self._new_id(board)
        if not _ID.match(board_id):
            raise EmuError(f"board id {board_id!r}: use letters, digits, '-', '_' or '.'")
        if board_id in self.boards:
            raise EmuError(f"board {board_id} is already running; stop it first or pick "
                           "another --id")
        state_dir = self.root / "boards" / board_id
        state_dir.mkdir(parents=True, exist_ok=True)
        flash_dir = Path(flash).expanduser().resolve() if flash else state_dir / "flash"
        flash_dir.mkdir(parents=True, exist_ok=True)
        self._lock_flash(board_id, flash_dir)
        try:
            from edgekit.emu.worlds import make_world  # noqa: F401 - validates kind early
            b = Board(self.loop, board_id=board_id, board_def=board_def, kind=kind,
                      time_mode=time, speed=None if speed is None else float(speed),
                      flash_dir=flash_dir, rom_dir=self.rom, state_dir=state_dir,
                      bare=bare, port=port, seed=seed)
        except ValueError as exc:
            self._unlock_flash(board_id)
            raise EmuError(str(exc)) from None
        except BaseException:
            self._unlock_flash(board_id)
            raise
        b.clock.ppm = float(drift_ppm)
        # The RTC's error: the board definition's figure unless the caller gives one.
        b.clock.rtc_ppm = float(board_def.get("rtc_drift_ppm", 0.0) if rtc_drift_ppm is None
                                else rtc_drift_ppm)
        if not 0.1 <= float(heap_scale) <= 4:
            raise EmuError("heap_scale must be 0.1..4 (0.7 proves 30% heap headroom)")
        b.heap_scale = float(heap_scale)
        b.rom = rom
        if rtc is not None:
            b.set_rtc(rtc)
        self.boards[board_id] = b
        try:
            b.power_on("power_on")
        except BaseException:
            self.stop(board_id)
            raise
        return b.info()

    def _lock_flash(self, board_id, flash_dir):
        fd = os.open(flash_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise EmuError(f"flash {flash_dir} is in use by another running board; stop it "
                           "or give this board its own --flash") from None
        self._locks[board_id] = fd

    def _unlock_flash(self, board_id):
        fd = self._locks.pop(board_id, None)
        if fd is not None:
            os.close(fd)

    def get(self, board_id):
        b = self.boards.get(board_id)
        if b is None:
            known = ", ".join(sorted(self.boards)) or "none running"
            raise EmuError(f"no board {board_id!r}; boards: {known}")
        return b

    def info(self, board_id):
        return self.get(board_id).info()

    def list(self):
        return [b.info() for _, b in sorted(self.boards.items())]

    def stop(self, board_id):
        return self.stop_many([board_id])[0]

    def stop_many(self, board_ids):
        """Stop boards concurrently: every VM is killed first, then all are reaped (one at a
        time, 200 boards took a minute: each waited for its own VM to die)."""
        if isinstance(board_ids, str) or not board_ids:
            raise EmuError("stop: give a list of board ids")
        boards = [self.get(i) for i in dict.fromkeys(board_ids)]   # all known, or none
        vms = [b.stop(reap=False) for b in boards]
        for vm in vms:
            if vm is not None:
                try:
                    vm.proc.wait(timeout=2)     # SIGKILL takes milliseconds
                except Exception:  # noqa: BLE001 - the exit watcher reaps it later anyway
                    pass
        for b in boards:
            del self.boards[b.id]
            self._unlock_flash(b.id)
        return [{"id": b.id, "stopped": True} for b in boards]

    def stop_all(self):
        return self.stop_many(list(self.boards)) if self.boards else []

    def fleet(self, count, board="esp32", kind=None, time="virtual", speed=None):
        """Start `count` boards. Virtual time defaults to FLEET_SPEED: uncapped, every idle
        board would spin through its sleeps as fast as the CPU allows, and 200 of them
        would starve the supervisor (one loop for all)."""
        if not 1 <= int(count) <= 1000:
            raise EmuError("fleet count must be 1..1000")
        if time == "virtual" and speed is None:
            speed = FLEET_SPEED
        return [self.start(board=board, kind=kind, time=time, speed=speed)
                for _ in range(int(count))]

    # --- time -------------------------------------------------------------------------------
    async def advance(self, board_id, seconds):
        b = self.get(board_id)
        seconds = float(seconds)
        if seconds < 0:
            raise EmuError("advance: seconds must be >= 0 (simulated time only moves forward)")
        if b.clock.mode != "paused":
            raise EmuError(f"board {board_id} runs in {b.clock.mode} time; advance needs "
                           "time=paused (start it with --time paused, or call pause())")
        await b.advance(seconds)
        return self.clock(board_id)

    def set_time_mode(self, board_id, mode, speed=None):
        b = self.get(board_id)
        if mode not in MODES:
            raise EmuError(f"time mode {mode!r}: use one of {', '.join(MODES)}")
        b.clock.jump(b.clock.now())
        b.clock.mode = mode
        b.clock.speed = None if speed is None else float(speed)
        b._arm()
        b.push_clock()
        return self.clock(board_id)

    def clock(self, board_id):
        b = self.get(board_id)
        now = b.clock.now()
        rtc = b.rtc_ms(now)
        return {"id": board_id, "mode": b.clock.mode, "speed": b.clock.speed,
                "sim_s": now / 1000.0, "device_ms": b.clock.device_ms(now),
                "rtc": None if rtc is None else rtc / 1000.0, "drift_ppm": b.clock.ppm,
                "rtc_drift_ppm": b.clock.rtc_ppm,
                "state": b.state, "events": [[t / 1000.0, n] for t, n in b.clock.pending()]}

    def drift(self, board_id, ppm):
        b = self.get(board_id)
        # Re-anchor device time at the current instant so the new rate applies from now on.
        now = b.clock.now()
        dev = b.clock.device_ms(now)
        rtc = b.rtc_ms(now)
        b.clock.ppm = float(ppm)
        b.clock.boot_world = now - dev / (1.0 + b.clock.ppm * 1e-6)
        if rtc is not None:             # the RTC, too, runs at the new rate from now on
            b.rtc = (rtc, now)
        b.push_clock()
        return self.clock(board_id)

    def set_rtc(self, board_id, unix):
        b = self.get(board_id)
        b.set_rtc(unix)
        b.push_clock()
        return self.clock(board_id)

    # --- world ------------------------------------------------------------------------------
    def _world(self, board_id):
        b = self.get(board_id)
        return b, b.world

    def set(self, board_id, values):
        b, world = self._world(board_id)
        try:
            world.set(b.clock.now(), **values)
        except ValueError as exc:
            raise EmuError(str(exc)) from None
        b.check_wakes()         # a tilt, a lid or a fire that an armed input sees wakes it now
        b.push_clock()          # the VM's prefetched reads are stale
        return world.snapshot()

    def world(self, board_id):
        b, world = self._world(board_id)
        world.advance_to(b.clock.now())
        return world.snapshot()

    def drive(self, board_id, csv_text):
        b, world = self._world(board_id)
        try:
            rows = world.drive_csv(b.clock.now(), csv_text)
        except ValueError as exc:
            raise EmuError(str(exc)) from None
        b.check_wakes()
        b.push_clock()
        return {"rows": rows}

    def fault(self, board_id, name, kind, value=None):
        b, world = self._world(board_id)
        try:
            world.fault(name, kind, value)
        except ValueError as exc:
            raise EmuError(str(exc)) from None
        b.check_wakes()
        b.push_clock()
        return world.snapshot()

    # --- power and link faults -------------------------------------------------------------
    def powercut(self, board_id, at=None, off=0.0, within=None):
        b = self.get(board_id)
        if within is not None:
            at = b.rng.uniform(0.0, float(within))
        if at is None or float(at) <= 0:
            b.powercut(float(off))
            return {"id": board_id, "cut_at_s": b.clock.now() / 1000.0}
        b.schedule_powercut(float(at), float(off))
        return {"id": board_id, "cut_at_s": b.clock.now() / 1000.0 + float(at)}

    def brownout(self, board_id, after_writes):
        b = self.get(board_id)
        if int(after_writes) < 1:
            raise EmuError("brownout: after_writes must be >= 1 (the Nth flash operation "
                           "from now fails)")
        b.brownout_after = int(after_writes)
        b.push_clock()          # the VM asks before each flash operation from now on
        return {"id": board_id, "after_writes": b.brownout_after}

    def reset(self, board_id, cause="hard"):
        if cause not in ("hard", "watchdog", "brownout", "power_on"):
            raise EmuError(f"reset cause {cause!r}: use hard, watchdog, brownout or power_on")
        self.get(board_id).reset(cause)
        return {"id": board_id, "cause": cause}

    def noise(self, board_id, rate, kinds=NOISE_KINDS, direction="both", seed=None):
        b = self.get(board_id)
        if direction not in ("both", "rx", "tx"):
            raise EmuError("noise direction: both, rx (host to board) or tx (board to host)")
        try:
            for d in (("rx", "tx") if direction == "both" else (direction,)):
                b.uart.noise[d].configure(float(rate), tuple(kinds), seed)
        except ValueError as exc:
            raise EmuError(str(exc)) from None
        return {"id": board_id, "rate": float(rate), "kinds": list(kinds),
                "direction": direction}

    def unplug(self, board_id, seconds=None):
        b = self.get(board_id)
        if seconds is not None and float(seconds) < 0:
            raise EmuError("unplug: seconds must be >= 0")
        b.uart.unplug(None if seconds is None else float(seconds))
        return {"id": board_id, "plugged": False, "for_s": seconds}

    def replug(self, board_id):
        b = self.get(board_id)
        b.uart.replug()
        return {"id": board_id, "plugged": True}

    def link_stats(self, board_id):
        b = self.get(board_id)
        stats = dict(b.uart.stats)
        stats["noise"] = {d: dict(n.events) for d, n in b.uart.noise.items()}
        return stats

    def close(self):
        self.stop_all()
