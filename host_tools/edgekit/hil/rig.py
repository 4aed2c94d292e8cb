"""A bench rig: the stimuli a real board's test can get, from a TOML description.

    [rig]
    port = "/dev/ttyACM1"          # the rig controller (a Pico running a line protocol)

    [stimuli]                      # world name -> rig channel
    flow_lpm = { channel = "pulse0", scale = 1.0 }   # pulse generator, pulses/min per L/min
    tamper   = { channel = "relay2" }                # a relay closing the reed contact
    battery_mv = { channel = "dac0" }

    [lines]
    power = "relay0"               # cuts the board's supply
    reset = "relay1"               # pulls EN/RUN low

Line protocol to the controller: `SET <channel> <value>\\n` and `PULSE <channel> <seconds>\\n`,
each answered `OK\\n` or `ERR <text>\\n`. A stimulus the rig does not map makes the test skip
with that reason: a bench run reports what it could not test rather than pretending.
"""
import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


class Rig:
    def __init__(self, stimuli=None, lines=None, port=None, name="bench rig"):
        self.stimuli = stimuli or {}
        self.lines = lines or {}
        self.port = port
        self.name = name
        self._serial = None

    @classmethod
    def empty(cls):
        return cls(name="no rig (--rig not given)")

    @classmethod
    def load(cls, path):
        with open(path, "rb") as f:
            data = tomllib.load(f)
        rig = data.get("rig", {})
        return cls(data.get("stimuli", {}), data.get("lines", {}), rig.get("port"), str(path))

    def can(self, name):
        return name in self.stimuli or name in self.lines

    def _send(self, line):
        if self._serial is None:
            if not self.port:
                pytest.skip(f"{self.name}: no [rig] port to drive")
            import serial
            self._serial = serial.serial_for_url(self.port, baudrate=115200, timeout=2)
        self._serial.write(line.encode() + b"\n")
        answer = self._serial.readline().decode(errors="replace").strip()
        if answer != "OK":
            raise RuntimeError(f"{self.name}: `{line}` answered {answer or 'nothing'}")

    def set(self, **values):
        for name, value in values.items():
            entry = self.stimuli.get(name)
            if entry is None:
                pytest.skip(f"{self.name} cannot produce stimulus {name!r}: map it under "
                            f"[stimuli] or run this test on the emulator")
            scaled = value * entry.get("scale", 1.0) if isinstance(value, (int, float)) \
                and not isinstance(value, bool) else int(bool(value))
            self._send(f"SET {entry['channel']} {scaled}")

    def get(self, name=None):
        pytest.skip(f"{self.name}: reading the world back needs the emulator")

    def snapshot(self):
        pytest.skip(f"{self.name}: reading the world back needs the emulator")

    def fault(self, name, kind, value=None):
        pytest.skip("sensor fault injection needs the emulator")

    def pulse(self, line, seconds):
        channel = self.lines.get(line)
        if channel is None:
            pytest.skip(f"{self.name} has no {line!r} line")
        self._send(f"PULSE {channel} {seconds}")
