"""Declarative HIL scenarios (TOML): the same file runs on the emulator and on a bench.

    [scenario]
    name = "dripping tap raises the leak alarm"
    kind = "water_meter"
    config = { leak_window_h = 6 }         # provisioned with this config
    rtc = 1767225600                       # optional: sync the device clock first

    [[step]]
    set = { leak_lpm = 0.05 }              # world stimuli (rig channels on a bench)
    [[step]]
    advance = "7h"                         # simulated on the emulator, real on a bench
    [[step]]
    expect_event = { name = "leak", active = true }
    [[step]]
    command = { name = "read" }
    expect = { key = "volume_ml", min = 20000, max = 22000 }
    [[step]]
    powercut = true                        # cut power now; the next step reconnects
    [[step]]
    expect_telemetry = { name = "volume", min = 20 }

Durations: seconds as a number, or "90s", "15m", "7h", "2d".
"""
import math
import time
from pathlib import Path

from edgekit import appschema
from edgekit import catalog as C
from edgekit.errors import EdgekitError
from edgekit.hil.rig import read_toml

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION_S = 400 * 86400        # a year and a bit: a longer step is a typo
STEP_KINDS = ("set", "advance", "expect_event", "command", "expect_telemetry", "powercut",
              "sync_time")
_HEAD_KEYS = ("name", "kind", "config", "rtc")


class ScenarioError(AssertionError):
    """A scenario step's expectation failed (a test failure)."""


class ScenarioFileError(ScenarioError, EdgekitError):
    """The scenario file itself is unusable; the message names the file and the entry."""


def duration(value):
    """Seconds, from a number or "90s", "15m", "7h", "2d": finite, 0..MAX_DURATION_S."""
    seconds = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value[-1:] in _UNITS:
        try:
            seconds = float(value[:-1]) * _UNITS[value[-1]]
        except ValueError:
            pass
    if seconds is None or not math.isfinite(seconds) or not 0 <= seconds <= MAX_DURATION_S:
        raise ScenarioError(f"duration {value!r}: use seconds or a number with s/m/h/d, "
                            f"0..{MAX_DURATION_S // 86400} days")
    return seconds


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value) and abs(value) <= 1e15


def _table(value, keys, required=("name",)):
    """Is `value` a table of only `keys`, with a text name where required?"""
    return isinstance(value, dict) and not set(value) - set(keys) and all(
        isinstance(value.get(k), str) and value[k] for k in required)


def _range_ok(spec):
    return all(_number(spec[k]) for k in ("min", "max") if k in spec) and \
        ("equals" not in spec or isinstance(spec["equals"], (str, bool, int, float)))


def _check_step(kind, value, step):
    """None if step `kind` (its value `value`, the whole table `step`) is well formed, else
    what is wrong."""
    extra = sorted(set(step) - {kind} - ({"expect"} if kind == "command" else set()))
    if extra:
        return f"unknown key(s) {', '.join(map(repr, extra))} beside {kind}"
    if kind == "set":
        if not isinstance(value, dict) or not value or not all(
                isinstance(v, bool) or _number(v) for v in value.values()):
            return "set takes a table of world quantities to numbers or true/false"
    elif kind == "advance":
        duration(value)
    elif kind == "expect_event":
        if not _table(value, ("name", "active", "min_duration")) or \
                not isinstance(value.get("active", True), bool):
            return "expect_event takes { name = \"...\", active = true|false, min_duration }"
        if "min_duration" in value:
            duration(value["min_duration"])
    elif kind == "command":
        if not _table(value, ("name", "args")) or not isinstance(value.get("args", {}), dict):
            return "command takes { name = \"...\", args = { ... } }"
        expect = step.get("expect")
        if expect is not None and (not _table(expect, ("key", "min", "max", "equals"),
                                              ("key",)) or not _range_ok(expect)):
            return "expect takes { key = \"...\", min = N, max = N, equals = V }"
    elif kind == "expect_telemetry":
        if not _table(value, ("name", "min", "max", "equals")) or not _range_ok(value):
            return "expect_telemetry takes { name = \"...\", min = N, max = N }"
    elif kind == "powercut":
        if value is not True:
            return "powercut takes true"
    elif kind == "sync_time":
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 32:
            return "sync_time takes a unix time (seconds)"
    return None


def load(path):
    """(head, steps) of scenario file `path`, every entry checked before a board is touched;
    ScenarioFileError names the file, the step and the problem."""
    path = Path(path)
    data = read_toml(path, ScenarioFileError)
    head = data.get("scenario")
    if not isinstance(head, dict) or head.get("kind") not in appschema.KINDS:
        raise ScenarioFileError(f"{path}: needs a [scenario] table with a kind (one of "
                                f"{', '.join(appschema.KINDS)})")
    if set(head) - set(_HEAD_KEYS) or not isinstance(head.get("name", ""), str) or \
            not isinstance(head.get("config", {}), dict) or not (
                "rtc" not in head or isinstance(head["rtc"], int)
                and not isinstance(head["rtc"], bool) and 0 <= head["rtc"] < 1 << 32):
        raise ScenarioFileError(f"{path}: [scenario] holds name (text), kind, config (a table) "
                                "and rtc (a unix time)")
    try:
        appschema.check_settings(head.get("config", {}), f"{path} [scenario] config")
        appschema.validate(head["kind"], head.get("config", {}))
    except EdgekitError as exc:
        raise ScenarioFileError(f"{path}: {exc}" if str(path) not in str(exc) else str(exc)) \
            from None
    steps = data.get("step", [])
    if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
        raise ScenarioFileError(f"{path}: steps are [[step]] tables")
    for i, step in enumerate(steps, 1):
        kinds = [k for k in step if k in STEP_KINDS]
        if len(kinds) != 1:
            raise ScenarioFileError(f"{path} step {i}: exactly one of "
                                    f"{', '.join(STEP_KINDS)}, got {sorted(step)!r}"[:300])
        try:
            problem = _check_step(kinds[0], step[kinds[0]], step)
        except ScenarioError as exc:
            problem = str(exc)
        if problem:
            raise ScenarioFileError(f"{path} step {i}: {problem}")
    head.setdefault("name", path.stem)
    return head, steps


def _in_range(value, spec, what):
    if "equals" in spec and value != spec["equals"]:
        raise ScenarioError(f"{what} = {value!r}, expected {spec['equals']!r}")
    if "min" in spec and not value >= spec["min"]:
        raise ScenarioError(f"{what} = {value!r}, expected >= {spec['min']}")
    if "max" in spec and not value <= spec["max"]:
        raise ScenarioError(f"{what} = {value!r}, expected <= {spec['max']}")


class Runner:
    def __init__(self, board, provisioned, log=print):
        self.board = board
        self.provisioned = provisioned
        self.log = log
        self.device = None
        self.events = []

    def run(self, path):
        head, steps = load(path)
        self.device = self.provisioned(head["kind"], config=head.get("config"))
        if "rtc" in head:
            self._sync_time(head["rtc"])
        for i, step in enumerate(steps, 1):
            kind = next(k for k in step if k in STEP_KINDS)
            try:
                getattr(self, "_" + kind)(step[kind], step)
            except ScenarioError as exc:
                raise ScenarioError(f"{head['name']}, step {i} ({kind}): {exc}") from None
        return head["name"]

    def _set(self, values, step):
        self.board.world.set(**values)

    def _advance(self, value, step):
        self.board.clock.advance(duration(value))

    def _sync_time(self, unix, step=None):
        self.device.session.request(C.TIME_SYNC, {C.K_TIME: int(unix)}, expect=C.TIME)

    def _powercut(self, value, step):
        self.board.powercut()
        time.sleep(0.3)
        self.device.reconnect()
        self.device.session.hello(timeout=10)

    def _collect_events(self):
        for msg in list(self.device.session.events):
            if msg.type == C.EVENT:
                self.events.append(msg.payload)
        self.device.session.events.clear()
        for _, payload in self.device.fetch_events():
            self.events.append(payload)

    def _expect_event(self, spec, step):
        self._collect_events()
        for ev in self.events:
            if ev.get(C.K_NAME) == spec["name"] and \
                    ("active" not in spec or ev.get(C.K_ACTIVE) == spec["active"]):
                if "min_duration" in spec:
                    _in_range(ev.get(C.K_DURATION), {"min": duration(spec["min_duration"])},
                              f"{spec['name']} duration")
                return
        raise ScenarioError(f"no event {spec} among {len(self.events)} events: "
                            f"{[(e.get(C.K_NAME), e.get(C.K_ACTIVE)) for e in self.events]}")

    def _command(self, spec, step):
        result = self.device.command(spec["name"], **spec.get("args", {}))
        expect = step.get("expect")
        if expect:
            value = result.get(expect["key"]) if isinstance(result, dict) else result
            _in_range(value, expect, f"{spec['name']}.{expect['key']}")

    def _expect_telemetry(self, spec, step):
        packs = self.device.drain_telemetry()
        values = [r.get(C.SENML_V) for pack in packs for r in pack
                  if r.get(C.SENML_N) == spec["name"]]
        if not values:
            raise ScenarioError(f"no telemetry record {spec['name']!r} in {len(packs)} packs")
        _in_range(values[-1], spec, f"telemetry {spec['name']}")
