"""What a HIL test talks to: an emulated board or a real one, behind one interface.

    target.transport()   protocol link (pyserial: serial port, pty or socket://)
    target.url           what pyserial/mpremote open
    target.world         stimuli (emulator world model, or the bench rig's channels)
    target.clock         now/advance (simulated on the emulator, real on a bench)
    target.powercut(), target.reset(), target.faults (emulator only: skips on a bench)
"""
import random
import threading
import time

import pytest

from edgekit.hil.rig import Rig
from edgekit.transport import SerialTransport


class BoardSpec:
    """`emu:BOARD[:KIND]`, `serial:PORT`, or a pyserial URL such as `socket://HOST:PORT`."""

    def __init__(self, text):
        self.text = text
        if text.startswith("emu:"):
            parts = text.split(":")
            if len(parts) not in (2, 3) or not parts[1]:
                raise pytest.UsageError(f"--board {text}: use emu:BOARD or emu:BOARD:KIND "
                                        "(e.g. emu:esp32:water_meter)")
            self.emulated, self.board, self.kind = True, parts[1], (parts[2] if len(parts) == 3
                                                                   else None)
            self.port = None
        else:
            self.emulated, self.board, self.kind = False, None, None
            self.port = text[len("serial:"):] if text.startswith("serial:") else text

    def __repr__(self):
        return self.text


class EmuClock:
    def __init__(self, handle):
        self._b = handle

    def now(self):
        return self._b.now()

    def advance(self, seconds):
        return self._b.advance(seconds)


class RealClock:
    """A bench has only real time: long waits are skipped, not silently shortened."""

    def __init__(self, max_wait):
        self.max_wait = max_wait
        self._t0 = time.monotonic()

    def now(self):
        return time.monotonic() - self._t0

    def advance(self, seconds):
        if seconds > self.max_wait:
            pytest.skip(f"needs {seconds:.0f} s of real time on a bench (limit "
                        f"--max-real-wait={self.max_wait:.0f}); run it on the emulator")
        time.sleep(seconds)
        return self.now()


class EmuWorld:
    def __init__(self, handle):
        self._b = handle

    def set(self, **values):
        return self._b.set(**values)

    def get(self, name=None):
        snap = self._b.world()
        return snap if name is None else snap.get("values", snap).get(name, snap.get(name))

    def snapshot(self):
        return self._b.world()

    def fault(self, name, kind, value=None):
        return self._b.fault(name, kind, value)


class EmulatedTarget:
    emulated = True

    def __init__(self, emulator, spec, time_mode="paused", **options):
        self.spec = spec
        self.handle = emulator.start(spec.board, kind=spec.kind, time=time_mode, **options)
        self.url = self.handle.url
        self.board = spec.board
        self.kind = spec.kind
        self.world = EmuWorld(self.handle)
        self.clock = EmuClock(self.handle)

    def transport(self):
        return SerialTransport(self.url).open()

    def powercut(self, **kw):
        return self.handle.powercut(**kw)

    def reset(self, cause="hard"):
        return self.handle.reset(cause)

    @property
    def faults(self):
        return self.handle

    def boots(self):
        return self.handle.info()["boots"]

    def close(self):
        try:
            self.handle.stop()
        except Exception:  # noqa: BLE001 - stopping a board that already died is fine
            pass


class RealTarget:
    """A board reached only through its port, and the stimuli of its rig (docs/hil.md)."""
    emulated = False

    def __init__(self, spec, rig=None, max_wait=120.0):
        self.spec = spec
        self.url = spec.port
        self.world = rig or Rig.empty()
        self.board = self.world.board
        self.kind = self.world.kind
        self.clock = RealClock(max_wait)
        self._timers = []

    def transport(self):
        return SerialTransport(self.url).open()

    def powercut(self, at=None, within=None, off=0.5):
        """Cut the supply through the rig's power relay, now or after `at` s (a random
        instant within `within` s): a timer, so the test carries on as on the emulator."""
        if not self.world.can("power"):
            pytest.skip("the bench rig has no power relay for power-cut tests")
        delay = random.uniform(0.0, within) if within is not None else float(at or 0)
        if delay > self.clock.max_wait:
            pytest.skip(f"a power cut in {delay:.0f} s of real time is past --max-real-wait")
        if delay <= 0:
            return self.world.pulse("power", off or 0.5)
        timer = threading.Timer(delay, self.world.pulse, ("power", off or 0.5))
        timer.daemon = True
        timer.start()
        self._timers.append(timer)
        return {"cut_in_s": delay}

    def reset(self, cause="hard"):
        if not self.world.can("reset"):
            pytest.skip("the bench rig has no reset line")
        if cause != "hard":
            pytest.skip(f"a {cause} reset cannot be staged by a rig's reset line")
        return self.world.pulse("reset", 0.1)

    @property
    def faults(self):
        pytest.skip("fault injection (noise, brown-out, unplug) needs the emulator")

    @property
    def handle(self):
        pytest.skip("reads or drives the emulator itself (its clock, wake counts, drives): "
                    "a bench board has only its port and the rig")

    def boots(self):
        pytest.skip("boot counting needs the emulator")

    def close(self):
        for timer in self._timers:
            timer.cancel()
