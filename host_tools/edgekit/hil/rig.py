"""A bench rig: the stimuli a real board's test can get, from a TOML description.

    [rig]
    port = "/dev/ttyACM1"          # the rig controller (a Pico running a line protocol)
    board = "esp32"                # the board definition of the slot's board (optional)
    kind = "water_meter"           # the kind whose world this rig stages (optional): tests
                                   # of another kind go to another board or skip

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
import math
import re
import threading

import pytest

from edgekit.errors import EdgekitError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

# A channel is one word of the line protocol: no spaces, no line breaks.
_CHANNEL = re.compile(r"^[A-Za-z0-9_.:/-]{1,64}$")
_TABLES = ("rig", "stimuli", "lines")


class RigError(EdgekitError):
    """A rig description cannot be used; the message names the file and the entry."""


def read_toml(path, error):
    """A TOML file as a dict; `error` (an exception class) for anything unreadable, one line
    naming the file."""
    try:
        raw = open(path, "rb").read()
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start}): it must be a TOML file") \
            from None
    except (ValueError, RecursionError) as exc:     # TOMLDecodeError is a ValueError
        raise error(f"{path}: invalid TOML: {str(exc).splitlines()[0]}") from None


def _check(path, data):
    """(stimuli, lines, port) of a parsed rig file, every entry checked."""
    unknown = sorted(set(data) - set(_TABLES))
    if unknown:
        raise RigError(f"{path}: unknown table(s) {', '.join(map(repr, unknown))}: a rig has "
                       f"{', '.join(_TABLES)}")
    for name in _TABLES:
        if not isinstance(data.get(name, {}), dict):
            raise RigError(f"{path}: [{name}] must be a table")
    port = data.get("rig", {}).get("port")
    if port is not None and (not isinstance(port, str) or not port.strip()):
        raise RigError(f"{path}: [rig] port must be a serial port name or URL")
    for key in ("board", "kind"):
        value = data.get("rig", {}).get(key)
        if value is not None and (not isinstance(value, str) or not _CHANNEL.match(value)):
            raise RigError(f"{path}: [rig] {key} {value!r} must be one word, e.g. "
                           + ('"esp32"' if key == "board" else '"water_meter"'))
    kind = data.get("rig", {}).get("kind")
    if kind is not None:
        from edgekit import appschema
        if kind not in appschema.KINDS:
            raise RigError(f"{path}: [rig] kind {kind!r} is not a device kind "
                           f"({', '.join(appschema.KINDS)})")
    stimuli = data.get("stimuli", {})
    for name, entry in stimuli.items():
        if not isinstance(entry, dict) or set(entry) - {"channel", "scale"}:
            raise RigError(f"{path}: stimulus {name!r} must be a table of channel and "
                           "optional scale, e.g. { channel = \"dac0\", scale = 1.0 }")
        _channel(path, f"stimulus {name!r}", entry.get("channel"))
        scale = entry.get("scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) \
                or not math.isfinite(scale) or abs(scale) > 1e9:
            raise RigError(f"{path}: stimulus {name!r} scale {scale!r} must be a finite "
                           "number")
    lines = data.get("lines", {})
    for name, channel in lines.items():
        _channel(path, f"line {name!r}", channel)
    return stimuli, lines, port, data.get("rig", {})


def _channel(path, what, channel):
    if not isinstance(channel, str) or not _CHANNEL.match(channel):
        raise RigError(f"{path}: {what} channel {channel!r} must be one word of 1..64 letters, "
                       "digits or _.:/- (it is sent as `SET <channel> <value>`)")


class Rig:
    def __init__(self, stimuli=None, lines=None, port=None, name="bench rig", board=None,
                 kind=None):
        self.stimuli = stimuli or {}
        self.lines = lines or {}
        self.port = port
        self.name = name
        self.board = board
        self.kind = kind
        self._serial = None
        self._lock = threading.Lock()   # a delayed power cut (a timer thread) shares the line

    @classmethod
    def empty(cls):
        return cls(name="no rig (--rig not given)")

    @classmethod
    def load(cls, path):
        """The rig described by TOML file `path`; RigError names the file and the problem."""
        stimuli, lines, port, head = _check(path, read_toml(path, RigError))
        return cls(stimuli, lines, port, str(path), head.get("board"), head.get("kind"))

    def can(self, name):
        return name in self.stimuli or name in self.lines

    def _send(self, line):
        if not self.port:
            pytest.skip(f"{self.name}: no [rig] port to drive")
        with self._lock:
            if self._serial is None:
                import serial
                self._serial = serial.serial_for_url(self.port, baudrate=115200, timeout=10)
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
