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
import time
from pathlib import Path

from edgekit import catalog as C

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
STEP_KINDS = ("set", "advance", "expect_event", "command", "expect_telemetry", "powercut",
              "sync_time")


class ScenarioError(AssertionError):
    pass


def duration(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value[-1:] in _UNITS:
        return float(value[:-1]) * _UNITS[value[-1]]
    raise ScenarioError(f"duration {value!r}: use seconds or a number with s/m/h/d")


def load(path):
    path = Path(path)
    with open(path, "rb") as f:
        data = tomllib.load(f)
    head = data.get("scenario")
    if not isinstance(head, dict) or "kind" not in head:
        raise ScenarioError(f"{path}: needs a [scenario] table with a kind")
    steps = data.get("step", [])
    for i, step in enumerate(steps, 1):
        kinds = [k for k in step if k in STEP_KINDS]
        if len(kinds) != 1:
            raise ScenarioError(f"{path} step {i}: exactly one of {', '.join(STEP_KINDS)}, "
                                f"got {sorted(step)}")
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
