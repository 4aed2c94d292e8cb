"""What a HIL test talks to: an emulated board or a real one, behind one interface.

    target.transport()   protocol link (pyserial: serial port, pty or socket://)
    target.url           what pyserial/mpremote open
    target.world         stimuli (emulator world model, or the bench rig's channels)
    target.clock         now/advance (simulated on the emulator, real on a bench)
    target.powercut(), target.reset(), target.faults (emulator only: skips on a bench)
"""
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
    emulated = False

    def __init__(self, spec, rig=None, max_wait=120.0):
        self.spec = spec
        self.url = spec.port
        self.board = None
        self.kind = None
        self.world = rig or Rig.empty()
        self.clock = RealClock(max_wait)

    def transport(self):
        return SerialTransport(self.url).open()

    def powercut(self, **kw):
        if not self.world.can("power"):
            pytest.skip("the bench rig has no power relay for power-cut tests")
        return self.world.pulse("power", kw.get("off", 0.5))

    def reset(self, cause="hard"):
        if not self.world.can("reset"):
            pytest.skip("the bench rig has no reset line")
        return self.world.pulse("reset", 0.1)

    @property
    def faults(self):
        pytest.skip("fault injection (noise, brown-out, unplug) needs the emulator")

    def boots(self):
        pytest.skip("boot counting needs the emulator")

    def close(self):
        pass
