"""The cooperative scheduler, run inside micropython with a simulated clock that wraps."""
from edgekit.testing import mp

FAKE_HAL = r"""
import scheduler
_WRAP = 1 << 30
class Link:
    def any(self): return False
class FakeHal:
    def __init__(self, start):
        self.t = start
        self.fed = 0
        self.link = Link()
        self.wdt_timeout = None
    def ticks_ms(self): return self.t % _WRAP
    def ticks_add(self, a, b): return (a + b) % _WRAP
    def ticks_diff(self, a, b):
        d = (a - b) % _WRAP
        return d - _WRAP if d >= _WRAP // 2 else d
    def wait(self, ms):
        self.t += ms
        return False
    def wdt_start(self, ms): self.wdt_timeout = ms
    def wdt_feed(self): self.fed += 1
"""


def test_periods_wrap_failures_watchdog_and_energy():
    result = mp.run_json(FAKE_HAL + r"""
import json
hal = FakeHal(start=(1 << 30) - 5000)   # wraps 5 s into the run
s = scheduler.Scheduler(hal, wdt_timeout_ms=30000)
counts = {"fast": 0, "slow": 0, "bad": 0, "once": 0}
def fast(): counts["fast"] += 1
def slow():
    counts["slow"] += 1
    hal.t += 1500          # takes 1.5 s: over its 1 s deadline
def bad():
    counts["bad"] += 1
    raise RuntimeError("sensor gone")
def once(): counts["once"] += 1
s.every("fast", 1000, fast)
s.every("slow", 10000, slow, deadline_ms=1000)
s.every("bad", 5000, bad, critical=True)
s.after("once", 2500, once)
start = hal.t
s.run(until=lambda: hal.t - start >= 60000)
fed_before = hal.fed
task = {t.name: t for t in s.tasks}
print(json.dumps({"counts": counts, "misses": task["slow"].misses, "fails": task["bad"].fails,
                  "errors": s.errors, "fed": hal.fed, "wdt": hal.wdt_timeout,
                  "energy": s.energy(), "names": sorted(task)}))
""")
    counts = result["counts"]
    # 60 s of simulated time across a tick wrap: fast ran about every second (slow's 1.5 s
    # runs push it back a little), slow every 10 s, bad every 5 s, once exactly once.
    assert 50 <= counts["fast"] <= 61
    assert counts["slow"] in (6, 7)
    assert counts["bad"] in (12, 13)
    assert counts["once"] == 1 and "once" not in result["names"]
    assert result["misses"] == counts["slow"]
    assert result["errors"] == counts["bad"] and result["fails"] == counts["bad"]
    assert result["wdt"] == 30000
    # the critical task failed >= 5 times in a row: the feed stopped after that
    assert 0 < result["fed"] < counts["fast"]
    energy = result["energy"]
    runs, awake_ms, cpu_us = energy["tasks"]["slow"]
    assert runs == counts["slow"] and awake_ms == 1500 * counts["slow"] and cpu_us >= 0
    assert energy["sleep_ms"] + energy["awake_ms"] <= energy["elapsed_ms"] + 1000


def test_sleep_never_exceeds_half_the_watchdog():
    out = mp.run_json(FAKE_HAL + r"""
import json
hal = FakeHal(start=0)
waits = []
real_wait = hal.wait
def wait(ms):
    waits.append(ms)
    return real_wait(ms)
hal.wait = wait
s = scheduler.Scheduler(hal, wdt_timeout_ms=8000)     # RP2040: 8.4 s hardware limit
s.every("hourly", 3600000, lambda: None)
start = hal.t
s.run(until=lambda: hal.t - start >= 7200000)
print(json.dumps({"max_wait": max(waits), "fed": hal.fed}))
""")
    assert out["max_wait"] <= 4000
    assert out["fed"] >= 7200000 // 4000      # fed at least once per wake


def test_a_wake_input_runs_its_task_at_once_and_unarmable_roles_fall_back_to_polling():
    """wake_on arms the roles a task names; when a wait ends on such an input the task runs
    at once (not at its next period) and the link handler is not called for it; a role the
    board cannot arm is logged and the task keeps its period."""
    result = mp.run_json(FAKE_HAL + r"""
import json
class WakeHal(FakeHal):
    def __init__(self, start):
        FakeHal.__init__(self, start)
        self.armed = []
        self.pending = []               # (at_ms, role): an input goes active then
        self.latched = []
    def wake_on(self, role):
        if role == "nope":
            raise OSError("pin role 'nope' is not wired to a wake-capable pin")
        self.armed.append(role)
    def wakes(self):
        out, self.latched = tuple(self.latched), []
        return out
    def wait(self, ms):
        if self.pending and self.pending[0][0] <= self.t + ms:
            at, role = self.pending.pop(0)
            self.t = max(self.t, at)
            if role in self.armed:
                self.latched.append(role)
                return True
        self.t += ms
        return False
hal = WakeHal(start=0)
logs = []
s = scheduler.Scheduler(hal, log=logs.append)
ran = []
inputs = []
s.every("guard", 3600000, lambda: ran.append(hal.t), phase_ms=3600000,
        wakes=("temp_alert", "tilt", "nope"))
s.every("other", 600000, lambda: None)
hal.pending = [(1234567, "temp_alert"), (2000000, "lid")]   # lid is not armed
s.run(on_input=lambda: inputs.append(hal.t), until=lambda: hal.t >= 3600000 * 2)
print(json.dumps({"ran": ran, "inputs": inputs, "armed": hal.armed, "logs": logs,
                  "woken": s.energy()["woken"], "roles": s.energy()["wake_roles"]}))
""")
    # woken at 1234.567 s, then the regular run one period later (phase restarts at the wake)
    assert result["ran"][0] == 1234567
    assert result["ran"][1] == 1234567 + 3600000
    assert result["inputs"] == []                    # a wake is not link input
    assert result["armed"] == ["temp_alert", "tilt"] == result["roles"]
    assert result["woken"] == 1
    assert any("nope cannot wake the board" in line for line in result["logs"])


# The pass before it took the earliest due from its own walk (run_due, 2026-12): a copy of
# the list every pass and a second walk over the tasks for the wait. The walk-once pass must
# run the same tasks at the same instants and ask for the same waits.
REFERENCE_PASS = r"""
class Reference(scheduler.Scheduler):
    def run_due(self):
        hal = self.hal
        healthy = True
        self.tick()
        now = hal.ticks_ms()
        for task in list(self.tasks):
            if hal.ticks_diff(task.due, now) > 0:
                continue
            if task.extra:
                self._due_in(task, task.due, task.extra)
                continue
            start = now
            try:
                task.fn()
                task.fails = 0
            except Exception:
                task.fails += 1
                self.errors += 1
            now = hal.ticks_ms()
            elapsed = hal.ticks_diff(now, start)
            task.runs += 1
            task.awake_ms += elapsed
            if elapsed > task.deadline:
                task.misses += 1
            if task.critical and task.fails >= 5:
                healthy = False
            if task.period:
                self._due_in(task, task.due, task.period)
                if not task.extra and hal.ticks_diff(task.due, now) <= 0:
                    self._due_in(task, now, task.period)
            elif task in self.tasks:
                self.tasks.remove(task)
        if healthy and self.wdt:
            hal.wdt_feed()
        return self.next_due_ms()
"""


def test_one_walk_pass_runs_and_waits_exactly_as_the_two_walk_pass():
    out = mp.run_json(FAKE_HAL + REFERENCE_PASS + r"""
import json
def workload(cls):
    hal = FakeHal(start=(1 << 30) - 7000000)    # the ticks wrap two hours in
    s = cls(hal, wdt_timeout_ms=120000)
    trace = [0, 0, []]      # runs, a checksum of (task, instant) in order, every name seen
    seed = [12345]
    def rnd(n):
        seed[0] = (seed[0] * 1103515245 + 12345) & 0x7FFFFFFF
        return (seed[0] >> 12) % n
    def task(name, busy):
        def fn():
            trace[0] += 1
            trace[1] = (trace[1] * 31 + len(name) * 1000003 + hal.t) & 0xFFFFFFF
            if name not in trace[2]:
                trace[2].append(name)
            hal.t += busy + rnd(3)            # time passes while tasks run
            r = rnd(40)
            if r == 0:
                s.after("retry", 1000 + rnd(90000), task("retry", 5))
            elif r == 1:
                s.cancel("retry")
            elif r == 2:
                s.cancel("slow")
                s.every("slow", 3600000, task("slow", 300), phase_ms=rnd(600000))
            elif r == 3:
                s.after("now", 0, task("now", 0))
            elif r == 4:
                hal.t += 70000                # a task over a whole sleep
        return fn
    s.every("sample", 60000, task("sample", 0), critical=True)
    s.every("tamper", 60000, task("tamper", 1))
    s.every("fast", 20000, task("fast", 0))
    s.every("checkpoint", 900000, task("checkpoint", 40))
    s.every("slow", 3600000, task("slow", 300), phase_ms=1234)
    s.every("weekly", 7 * 86400000, task("weekly", 2))      # walked in _SPAN steps
    s.after("once", 2500, task("once", 0))
    waits = 0
    for _ in range(20000):                  # about 4.6 days: past a _SPAN step
        w = s.run_due()
        waits = (waits * 31 + w) & 0xFFFFFFF
        hal.wait(w)
    return {"runs": trace[0], "trace": trace[1], "names": sorted(trace[2]), "waits": waits,
            "fed": hal.fed, "t": hal.t,
            "tasks": sorted([t.name, t.runs, t.misses, t.awake_ms] for t in s.tasks)}
print(json.dumps({"new": workload(scheduler.Scheduler), "ref": workload(Reference)}))
""")
    new, ref = out["new"], out["ref"]
    assert new["names"] == ["checkpoint", "fast", "now", "once", "retry", "sample", "slow",
                            "tamper", "weekly"]
    assert new["t"] > 4 * 86400000 and new["runs"] > 20000
    assert new == ref
