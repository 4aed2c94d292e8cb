"""Python API for tests: an in-process supervisor on a background thread.

    from edgekit.emu import Emulator
    with Emulator() as emu:
        b = emu.start("esp32", kind="water_meter", time="paused")
        b.url, b.pty                      # socket://127.0.0.1:PORT, /dev/pts/N
        b.advance(3600); b.now()          # simulated seconds
        b.set(flow_lpm=5); b.powercut(); b.noise(0.01); b.unplug(2); b.stop()

The method names of BoardHandle are a contract (the HIL plugin codes against them); they
are listed in docs/emulator.md. Every call is marshalled onto the supervisor's loop.
"""
import asyncio
import shutil
import threading
import time as _time
from pathlib import Path

from edgekit.emu.scratch import scratch_dir
from edgekit.emu.supervisor import EmuError, Supervisor

_CALL_TIMEOUT = 120.0


class Emulator:
    def __init__(self, state_dir=None):
        self._tmp = None
        if state_dir is None:
            self._tmp = scratch_dir("edgekit-emu-")   # flash in RAM: see emu.scratch
            state_dir = self._tmp
        self.state_dir = Path(state_dir)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="edgekit-emu", daemon=True)
        self._started = threading.Event()
        self._thread.start()
        self._started.wait()
        self.sup = self.call(lambda: Supervisor(self.loop, self.state_dir))

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._started.set)
        self.loop.run_forever()

    def call(self, fn, *args, **kwargs):
        """Run `fn` on the supervisor loop (awaiting it if it is a coroutine function)."""
        async def runner():
            result = fn(*args, **kwargs)
            if asyncio.iscoroutine(result):
                result = await result
            return result
        return asyncio.run_coroutine_threadsafe(runner(), self.loop).result(_CALL_TIMEOUT)

    def start(self, board="esp32", kind=None, time="virtual", **options):
        """Start a board; options: speed, flash, bare, port, seed, id, drift_ppm,
        rtc_drift_ppm (default: the board definition's), rtc, heap_scale, rom (mpy or
        frozen32: edgekit.emu.frozen_rom)."""
        info = self.call(self.sup.start, board=board, kind=kind, time=time, **options)
        return BoardHandle(self, info)

    def fleet(self, count, board="esp32", kind=None, time="virtual", speed=None):
        infos = self.call(self.sup.fleet, count, board=board, kind=kind, time=time,
                          speed=speed)
        return [BoardHandle(self, i) for i in infos]

    def boards(self):
        return self.call(self.sup.list)

    def stop(self, boards):
        """Stop several boards concurrently (handles or ids)."""
        ids = [getattr(b, "id", b) for b in boards]
        return self.call(self.sup.stop_many, ids)

    def close(self):
        if self.loop.is_closed():
            return
        try:
            self.call(self.sup.close)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()
            if self._tmp:
                shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class BoardHandle:
    """One running board. Attributes: id, url, pty, pty_link, flash, board, kind."""

    def __init__(self, emu, info):
        self._emu = emu
        self.id = info["id"]
        self.url = info["url"]
        self.flash = info["flash"]
        self.board = info["board"]
        self.kind = info["kind"]
        self.pty_link = info["pty_link"]

    def _call(self, name, *args, **kwargs):
        return self._emu.call(getattr(self._emu.sup, name), self.id, *args, **kwargs)

    def __repr__(self):
        return f"<emulated {self.board} board {self.id} at {self.url}>"

    @property
    def pty(self):
        """The host-facing pty path (changes after an unplug; pty_link does not)."""
        return self.info()["pty"]

    def info(self):
        return self._call("info")

    # time
    def now(self):
        """Simulated seconds since the board was created."""
        return self._call("clock")["sim_s"]

    def clock(self):
        return self._call("clock")

    def advance(self, seconds):
        """Paused mode: run the board through `seconds` of simulated time, then stop."""
        return self._call("advance", seconds)["sim_s"]

    def set_time_mode(self, mode, speed=None):
        return self._call("set_time_mode", mode, speed)

    def pause(self):
        return self.set_time_mode("paused")

    def drift(self, ppm):
        return self._call("drift", ppm)

    def set_rtc(self, unix):
        return self._call("set_rtc", unix)

    # world
    def set(self, **values):
        return self._call("set", values)

    def world(self):
        return self._call("world")

    def drive(self, csv):
        """Drive quantities from a CSV file path or text (first column t, seconds)."""
        text = csv
        if "\n" not in str(csv) and Path(str(csv)).is_file():
            text = Path(csv).read_text()
        return self._call("drive", text)

    def fault(self, name, kind, value=None):
        return self._call("fault", name, kind, value)

    # faults
    def powercut(self, at=None, off=0.0, within=None):
        return self._call("powercut", at=at, off=off, within=within)

    def brownout(self, after_writes):
        return self._call("brownout", after_writes)

    def reset(self, cause="hard"):
        return self._call("reset", cause)

    def noise(self, rate, kinds=("flip", "drop", "dup"), direction="both", seed=None):
        return self._call("noise", rate, kinds=kinds, direction=direction, seed=seed)

    def unplug(self, seconds=None):
        return self._call("unplug", seconds)

    def replug(self):
        return self._call("replug")

    def link_stats(self):
        return self._call("link_stats")

    def stop(self):
        return self._emu.call(self._emu.sup.stop, self.id)

    # conveniences for tests
    def serial(self, timeout=1.0):
        """A pyserial port on the board's TCP link."""
        import serial
        return serial.serial_for_url(self.url, timeout=timeout)

    def wait_for(self, predicate, timeout=10.0, interval=0.02):
        """Poll `predicate(info)` until true; returns the info, raises EmuError on timeout."""
        end = _time.monotonic() + timeout
        while True:
            info = self.info()
            if predicate(info):
                return info
            if _time.monotonic() > end:
                raise EmuError(f"board {self.id}: condition not met within {timeout} s "
                               f"(state {info['state']}, boots {info['boots']})")
            _time.sleep(interval)
