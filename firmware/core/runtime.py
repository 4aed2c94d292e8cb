# The device runtime: boot sequence, app selection, journals, device time, event push.
#
#   factory state   -> only HELLO and the provisioning responder answer
#   provisioned     -> core services + the app of the provisioned kind
# Everything reaches hardware through `hal`; everything persistent through store/journal.
import gc

# Collect every 4 KB allocated from here until the runtime is up (then gc.threshold(-1)):
# a heap left to fill up before each collection scatters long-lived objects over all of
# it, between the garbage of loading modules and of opening journals. Measured in the
# emulator, where modules load into the heap: the largest free block was 8 KB of 80 KB
# free; collecting as it goes, 60 KB. Frozen modules leave no garbage on a board, but the
# runtime's own objects are packed low there too (docs/memory.md).
gc.collect()
gc.threshold(4096)

import sys  # noqa: E402 - after the collector is set up

import catalog as C
import cbor
import device as device_mod
import maintenance
import ota
import schema as schema_mod
import senml
import services
import timefloor
from agent import Agent
from journal import Journal
from link import Link
from scheduler import Scheduler

# The development tree offers every kind: edgekit.firmware_tree.KINDS, the one list, which
# tests/host/test_firmware_tree.py holds this copy to (a device cannot import host code).
KNOWN_KINDS = ("water_meter", "water_atm", "smart_bin", "env_sensor")
_CLOCK_MS = 3600 * 1000     # keeps the saved time limits ahead (timefloor: one save an hour)


def _import_if_present(name):
    """The module `name`, or None if this firmware has no such module.

    Imported, not looked for: a board image carries the firmware frozen, and frozen modules
    are invisible to os.stat (only the import system sees them, through the ".frozen" entry
    of sys.path), so probing the filesystem made a frozen-only board boot the minimal app.
    An ImportError raised INSIDE the module (a module it needs is missing) is a broken build,
    not an absent app: it propagates."""
    try:
        return __import__(name)
    except ImportError as exc:
        text = str(exc.args[0]) if exc.args else ""
        if text and ("'%s'" % name) not in text:
            raise
        return None


def available_kinds():
    """Kinds this firmware can become. A built image names its own in `build_info` (written
    by the build); the development tree offers every kind, each running its app when the
    module is present and the minimal app otherwise."""
    try:
        import build_info
        return list(build_info.KINDS)
    except ImportError:
        return list(KNOWN_KINDS)


class MinimalApp:
    """A provisioned device whose kind has no app in this firmware: it answers HELLO and
    reports its identity, nothing else (and says so rather than pretending)."""
    SCHEMA = {}

    def __init__(self, rt):
        rt.log("no app for kind %s in this firmware: minimal app" % rt.dev.kind, 2)


class Runtime:
    def __init__(self, hal):
        self.hal = hal
        board = hal.BOARD
        self.fw_version = device_mod.FW_VERSION
        self.reset_cause = hal.reset_cause()
        self.boot_ms = hal.ticks_ms()
        self.max_frame = board.get("max_frame", C.MAX_FRAME_DEFAULT)
        self.window = board.get("window", 4)
        self.dev = device_mod.Device(hal)
        self.kinds = available_kinds()
        # The app's modules are imported before the runtime's objects exist: a board runs
        # them frozen, from flash, but where they load into the heap (the emulator, a
        # development board) they then take one region instead of the gaps between
        # long-lived objects.
        self._app_mod = self.app_module(self.dev.kind) if self.dev.provisioned else None
        self.agent = Agent(self.dev, self.max_frame)
        self.link = Link(hal, self.agent, self.max_frame)
        self.sched = Scheduler(hal, board.get("wdt_ms", 0) if self.dev.provisioned else 0,
                               self.log)
        self.link.uptime_s = self.sched.tick
        self.app = None
        self.schema = {}
        self.telemetry = self.events = self.logs = None
        self.net = None
        self._boot_clock()
        if self.dev.provisioned:
            self._start_app()
            self._start_net()
        else:
            # Only a factory-state device needs the responder: a provisioned one never loads
            # it (its functions would sit in RAM for ten years on a board with frozen code).
            import provision
            provision.Provisioner(self)
        # Who may take the link into the REPL (SPEC 12): nobody, on a provisioned device,
        # unless maintenance is open.
        self.gate = maintenance.Gate(self)
        self.link.on_interrupt = self.gate.interrupt
        services.install(self)
        ota.install(self)       # OTA handlers + trial confirmation (SPEC 9)
        gc.collect()
        gc.threshold(-1)

    @property
    def state(self):
        return "provisioned" if self.dev.provisioned else "factory"

    # -- apps ------------------------------------------------------------------------------
    def app_module(self, kind):
        mod = _import_if_present(kind) if kind in self.kinds else None
        return mod or MinimalApp

    def schema_for(self, kind):
        # The settings schema lives in <kind>_schema beside the app. Provisioning (factory
        # state, which reboots into the app afterwards) needs only that: importing the app
        # for it pulled in every module the app uses, the largest allocation of a water
        # ATM's provisioning (bench/bench_heap.py).
        name = kind + "_schema"
        mod = _import_if_present(name) if kind in self.kinds else None
        return mod.SCHEMA if mod else self.app_module(kind).SCHEMA

    def _start_app(self):
        root = self.hal.storage_root().rstrip("/") + "/data"
        journals = self.hal.BOARD.get("journals", {})
        self.telemetry = Journal(root, "telemetry", *journals.get("telemetry", (65536, 4096)))
        self.events = Journal(root, "events", *journals.get("events", (16384, 2048)))
        self.logs = Journal(root, "logs", *journals.get("logs", (8192, 2048)))
        mod = self._app_mod
        self._app_mod = None
        self.schema = mod.SCHEMA
        self.dev.read_only_commands = device_mod.READ_ONLY_COMMANDS + \
            tuple(getattr(mod, "READ_ONLY_COMMANDS", ()))
        self.dev.config = self._migrate_config(self.dev.config)
        self.app = mod.App(self) if mod is not MinimalApp else MinimalApp(self)

    def _start_net(self):
        # SPEC 13: a device provisioned with a network config also talks MQTT to the fleet
        # service; one without loads none of it (a serial-only device keeps its heap).
        cfg = self.dev.store.load("net")
        if not cfg:
            return
        from netlink import NetLink
        self.net = NetLink(self.hal, self.agent, self.dev.device_id, cfg, self.max_frame)
        self.sched.every("net", cfg.get("poll_s", 5) * 1000, self.net.poll, deadline_ms=15000)
        net = self.net
        # While the broker has more for us (an OTA transfer), the next poll comes at once.
        net.hurry = lambda ms: self.sched.after("net_now", ms, net.poll, deadline_ms=15000)

    def push(self, body):
        """Send an unsolicited body (telemetry, event): to the fleet service over the
        network when connected, else on the serial link (a gateway may be listening)."""
        if self.net is not None and self.net.send(body):
            return
        self.link.send(body)

    def _migrate_config(self, stored):
        # After an update the schema may have new keys (take defaults) or drop old ones
        # (log and drop): a stored config never stops the app from starting.
        keep = {}
        for k, v in (stored or {}).items():
            if k in self.schema:
                keep[k] = v
            else:
                self.log("config key %s no longer exists: dropped" % k, 2)
        try:
            return schema_mod.validate(self.schema, keep)
        except ValueError as exc:
            self.log("stored config invalid (%s): defaults used" % exc, 3)
            return schema_mod.defaults(self.schema)

    # -- device time -----------------------------------------------------------------------
    # Uptime, device time, the time floor and the dates reported: timefloor.py, SPEC 8.4.
    # Uptime comes from the scheduler, which adds up tick steps at every pass: it never
    # wraps (a single ticks_diff since boot went negative after 6.2 days).
    def _boot_clock(self):
        self.clock = timefloor.Clock(self.hal, self.dev.store, self.sched.tick)
        self.boots = self.clock.boots
        self.sched.every("clock", _CLOCK_MS, self._keep_clock, phase_ms=_CLOCK_MS)

    def _keep_clock(self):
        # Reading them moves the saved limits on when they are reached: after a power cut
        # device time then resumes at most an hour past where it was.
        self.clock.device_time()
        self.clock.date()

    def uptime_s(self):
        return self.sched.tick()

    def uptime_ms(self):
        return self.sched.uptime_ms()

    def device_time(self):
        return self.clock.device_time()

    def date(self):
        """Unix seconds to report as now: the RTC when synced, else an estimate at least the
        time floor and every date reported before (None before any sync)."""
        return self.clock.date()

    # -- records ---------------------------------------------------------------------------
    def record(self, records):
        """Journal a SenML pack of records taken now (durable when this returns). Dated as
        every date the device reports (SPEC 8.4): after a power cut that lost the RTC, the
        estimate that never goes below a date reported before. Stamped by device time
        instead, a pack from before a reboot sent after it came out up to an hour too old
        (device time resumes at its saved limit), behind the packs stored before it."""
        d = self.date()
        entry = [d, self.device_time(), records]
        if d is not None and not self.clock.synced():
            entry.append(1)         # dated by the estimate: see restamp
        return self.telemetry.append(cbor.dumps(entry))

    def restamp(self, entry):
        """Stored [unix|None, device_time, records, estimated?] -> a SenML pack for sending
        now. A pack dated by the estimate (RTC lost) and sent on a clock synced since, in the
        same boot, is dated back from the sync by device time, which ran with the true time
        all along: the estimate was up to an hour off, by the time the board was off and by
        the saved limit it resumed at (SPEC 8.3); from the sync it is right to the second."""
        at_unix, at_dt, records = entry[0], entry[1], entry[2]
        now_unix, now_dt = self.date(), self.device_time()
        if (len(entry) > 3 and now_unix is not None and self.clock.synced()
                and at_dt >= self.clock.boot_time()):
            at_unix = now_unix - (now_dt - at_dt)
        base = "urn:dev:ek:%s:" % self.dev.device_id
        t = senml.stamp(at_unix, at_dt, now_unix, now_dt)
        return senml.pack(base, records, base_time=t)

    def event(self, name, active, duration, severity, suppressed=0):
        """Journal an alarm/event and push it to the host at once (it is also fetchable)."""
        # K_TIME: the date (SPEC 8.4); a device no sync ever reached has none and gives
        # minus its device time (seconds it has counted, across reboots: never wraps).
        t = self.date()
        payload = {C.K_NAME: name, C.K_ACTIVE: active, C.K_DURATION: int(duration),
                   C.K_LEVEL: severity, C.K_TIME: t if t is not None else -self.device_time()}
        if suppressed:
            payload[C.K_COUNT] = suppressed
        seq = self.events.append(cbor.dumps(payload))
        payload[C.K_FROM] = seq
        # Older events still unacknowledged (raised while the network was down) go with it,
        # oldest first: alone, this one would reach the fleet service before them, and a
        # webhook would hear "cleared" before the "set" it clears.
        if self.events.pending_count() > 1 and services.push_event_backlog(self):
            return
        try:
            self.push(self.dev.body_view(C.EVENT, payload))
        except OSError:
            pass    # link down: the host fetches it later (store-and-forward)

    def log(self, text, level=1):
        if self.logs is not None and level >= 2:   # only warnings and worse cost flash
            self.logs.append(cbor.dumps([level, text[:160]]))

    # -- main loop -------------------------------------------------------------------------
    def run(self):
        """The main loop. It survives anything but Ctrl-C: an exception that escapes is
        logged and the loop goes on; if they keep coming the board resets (a device in the
        field must never sit in the REPL)."""
        failures = []
        while True:
            try:
                self.sched.run(on_input=self.link.poll)
                return
            except KeyboardInterrupt:
                if not self.gate.locked:
                    raise
                self.gate.refused += 1      # no way out of the firmware while locked
                continue
            except SystemExit:
                raise
            except BaseException as exc:  # noqa: B902 - MemoryError included, on purpose
                gc.collect()
                now = self.hal.ticks_ms()
                failures = [t for t in failures if self.hal.ticks_diff(now, t) < 60000]
                failures.append(now)
                try:
                    self.log("main loop: %r" % (exc,), 3)
                except BaseException:  # noqa: B902 - logging must not make it worse
                    pass
                if len(failures) >= 10:
                    self.hal.reset("main_loop")


def main(hal):
    """Run the device. Returns (or raises KeyboardInterrupt) only where the REPL may be
    entered: factory state, or maintenance open (SPEC 12). Anything else that would end the
    firmware resets the board: a field device never sits in the REPL.

    A failure while starting (out of memory in a fragmented boot heap, a damaged record) is
    collected and tried once more, then the board resets: a persistent fault shows as
    repeated boots (reset cause, boot counter)."""
    rt = None
    try:
        for attempt in (1, 2):
            try:
                rt = Runtime(hal)
                break
            except BaseException:  # noqa: B902 - MemoryError included, on purpose
                gc.collect()
                if attempt == 2:
                    raise
        rt.run()
        if not rt.gate.locked:
            return
    except BaseException:  # noqa: B902 - Ctrl-C included: a locked device does not stop
        if rt is not None and not rt.gate.locked:
            raise
    hal.reset("firmware_ended")
