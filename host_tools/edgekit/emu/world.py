"""The simulated world around one board: named quantities over simulated time.

A World holds quantities (flow rate, battery voltage, a tamper magnet, ...) that tests and
the CLI set by name, that a CSV time series can drive, and from which the HAL's reads are
computed at the board's current world time. Kinds subclass World (see worlds/); adding one
is a small module declaring its quantities and four hooks:

    integrate(t0_ms, t1_ms)    move continuous state (counters, batteries) across a span
    pulse_total(role) -> int   absolute pulses on a pulse pin since the world began
    adc_mv(role) / input(role) / sensor(name) / card_uid()
    on_output(role, value)     the firmware drove an output (valve, pump, LED...)

Faults apply to what the HAL reads (a role or sensor name): "stuck" freezes the value seen
at the next read, "range" returns a fixed out-of-range value, "nack" makes the read fail
like an I2C NACK. Quantities change only at explicit times, so integration is exact.
"""
import csv
import io

FAULTS = ("stuck", "range", "nack")


class WorldError(ValueError):
    """A bad quantity name or value; the message lists what is valid."""


class HardwareFault(Exception):
    """The read fails on the device (I2C NACK, sensor not fitted): hal.HalError there."""


STRAP = "maint_strap"
NETWORK = "network"
# The board's network path (edgekit.emu.netpath): one-way delay in ms, each direction, and
# the fraction of TCP segments lost (each costs a retransmission timeout, as over TCP).
NET_LATENCY = "net_latency_ms"
NET_LOSS = "net_loss"
# Quantities of every world with a valid range: (low, high, what the range means).
LIMITS = {NET_LATENCY: (0.0, 60000.0, "a one-way delay in ms from 0 (none) to 60000"),
          NET_LOSS: (0.0, 1.0, "the fraction of segments lost from 0 (none) to 1 (all)")}


def _within(name, value):
    limits = LIMITS.get(name)
    if limits is None:
        return value
    low, high, meaning = limits
    if not low <= value <= high:        # also false for nan
        raise WorldError(f"{name}={value:g} is out of range: give {meaning}")
    return value


class World:
    kind = None
    # name -> default; a subclass extends this. Values are numbers or booleans.
    quantities = {"battery_mv": 3700.0}
    units = {"battery_mv": "mV"}

    def __init__(self, board):
        self.board = board
        self.values = dict(self.quantities)
        # The maintenance strap (a jumper on the board, SPEC 12) exists in every world: it is
        # the bench's, not the street's.
        self.values.setdefault(STRAP, False)
        # The board's network (Wi-Fi, cellular; SPEC 13): up unless a test or `emu set ID
        # network=false` takes it down. The firmware sees it through hal.net_up.
        self.values.setdefault(NETWORK, True)
        self.values.setdefault(NET_LATENCY, 0.0)
        self.values.setdefault(NET_LOSS, 0.0)
        self.t = 0.0                # world ms the state has been integrated to
        self.outputs = {}
        self.faults = {}            # read name -> [kind, value]
        self._series = []           # pending CSV rows: (world_ms, {name: value})
        self.alerts = {}            # sensor name -> high limit (Cel) the firmware programmed
        # input role -> the sensor whose alert output drives it (read on every input read)
        self._alert_of = {spec["alert"]: name
                          for name, spec in board.get("sensors", {}).items()
                          if spec.get("alert")}

    # --- time ---------------------------------------------------------------------------
    def advance_to(self, t):
        """Integrate up to world time `t`, applying driven rows in order."""
        while self._series and self._series[0][0] <= t:
            row_t, row = self._series.pop(0)
            if row_t > self.t:
                self.integrate(self.t, row_t)
                self.t = row_t
            self.values.update(row)
        if t > self.t:
            self.integrate(self.t, t)
            self.t = t

    def integrate(self, t0, t1):
        """Hook: continuous state across [t0, t1) with the current values."""

    # --- setting quantities ---------------------------------------------------------------
    def coerce(self, name, value):
        if name not in self.values:
            raise WorldError(f"{self.kind or 'generic'} world has no quantity {name!r}; "
                             f"quantities: {', '.join(sorted(self.values))}")
        default = self.quantities.get(name, self.values[name])
        if isinstance(value, str):
            low = value.strip().lower()
            if low in ("true", "on", "yes", "1") and isinstance(default, bool):
                return True
            if low in ("false", "off", "no", "0") and isinstance(default, bool):
                return False
            try:
                value = float(value)
            except ValueError:
                raise WorldError(f"{name}={value!r}: expected a number"
                                 + (" or true/false" if isinstance(default, bool) else "")) \
                    from None
        if isinstance(default, bool):
            return bool(value)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise WorldError(f"{name}={value!r}: expected a number")
        return _within(name, float(value))

    def set(self, t, **values):
        coerced = {k: self.coerce(k, v) for k, v in values.items()}
        self.advance_to(t)
        self.values.update(coerced)

    # Sensors whose read is a function of the world at an instant (no queue popped, no noise
    # drawn): answered ahead with each wake in paused time, like pins (emu.hal_ops.prefetch).
    PURE_SENSORS = ()

    def pure_read(self, name):
        """True when reading sensor `name` now changes nothing (see PURE_SENSORS)."""
        return name in self.PURE_SENSORS

    MAX_DRIVE_S = 10 * 366 * 86400      # a CSV row further ahead than ten years is a typo

    def drive_csv(self, t, text):
        """Drive quantities from CSV text: a `t` column (seconds from now), then names. Every
        row is checked before any is scheduled: WorldError names the line."""
        reader = csv.reader(io.StringIO(text))
        try:
            header = [h.strip() for h in next(reader, [])]
        except csv.Error as exc:
            raise WorldError(f"CSV line 1: {exc}") from None
        if not header or header[0] not in ("t", "time", "seconds"):
            raise WorldError("CSV needs a header whose first column is t (seconds from "
                             "start), e.g. 't,flow_lpm'")
        for name in header[1:]:
            if name not in self.values:
                raise WorldError(f"CSV header: {self.kind or 'generic'} world has no quantity "
                                 f"{name!r}; quantities: {', '.join(sorted(self.values))}")
            if header.count(name) > 1:
                raise WorldError(f"CSV header names {name!r} twice")
        rows = []
        try:
            for lineno, rec in enumerate(reader, start=2):
                if not rec or not "".join(rec).strip():
                    continue
                if len(rec) != len(header):
                    raise WorldError(f"CSV line {lineno}: {len(rec)} fields, header has "
                                     f"{len(header)}")
                try:
                    at = float(rec[0])
                except ValueError:
                    raise WorldError(f"CSV line {lineno}: time {rec[0]!r} is not a number") \
                        from None
                if not 0 <= at <= self.MAX_DRIVE_S:     # also false for nan
                    raise WorldError(f"CSV line {lineno}: time {rec[0]!r} must be 0.."
                                     f"{self.MAX_DRIVE_S} seconds from now")
                row = {}
                for name, val in zip(header[1:], rec[1:]):
                    if val.strip() == "":
                        continue
                    value = self.coerce(name, val.strip())
                    if value != value or value in (float("inf"), float("-inf")):
                        raise WorldError(f"CSV line {lineno}: {name} {val.strip()!r} is not a "
                                         "finite number")
                    row[name] = value
                rows.append((t + at * 1000.0, row))
        except csv.Error as exc:
            raise WorldError(f"CSV line {reader.line_num}: {exc}") from None
        except WorldError as exc:
            if str(exc).startswith("CSV"):
                raise
            raise WorldError(f"CSV line {reader.line_num}: {exc}") from None
        rows.sort(key=lambda r: r[0])
        self.advance_to(t)
        self._series = sorted(self._series + rows, key=lambda r: r[0])
        return len(rows)

    # --- faults -----------------------------------------------------------------------------
    def fault(self, name, kind, value=None):
        if kind in (None, "none", "clear"):
            self.faults.pop(name, None)
            return
        if kind not in FAULTS:
            raise WorldError(f"fault {kind!r}: use one of {', '.join(FAULTS)} or none")
        if kind == "range" and value is None:
            raise WorldError("a 'range' fault needs the out-of-range value to return")
        self.faults[name] = [kind, value]

    def _faulted(self, name, read):
        f = self.faults.get(name)
        if f is None:
            return read()
        kind, value = f
        if kind == "nack":
            raise HardwareFault(f"{name}: no answer (injected NACK)")
        if kind == "range":
            return value
        if value is None:           # stuck: freeze whatever the next read returns
            f[1] = read()
        return f[1]

    # --- what the HAL reads (called after advance_to) ----------------------------------------
    def read(self, op, name):
        if op == "pulse":
            return self._faulted(name, lambda: self.pulse_total(name))
        if op == "adc":
            return self._faulted(name, lambda: int(round(self.adc_mv(name))))
        if op == "input":
            return self._faulted(name, lambda: bool(self._input_or_alert(name)))
        if op == "sensor":
            return self._faulted(name, lambda: self.sensor(name))
        raise WorldError(f"unknown read {op!r}")

    def pulse_total(self, role):
        return 0

    # --- alert outputs of sensors (an SHT3x ALERT pin wired to an input role) ---------------
    SHT3X_DEFAULT_HIGH_C = 60.0     # the part's power-on high-set limit (datasheet)

    def set_alert(self, sensor, high):
        self.alerts[sensor] = float(high)

    def _input_or_alert(self, role):
        name = self._alert_of.get(role)
        if name is None:
            return self.input(role)
        try:
            value = self._faulted(name, lambda: self.sensor(name))
        except HardwareFault:
            return False                # a sensor that does not answer raises no alert
        temp = value.get("temp_c") if isinstance(value, dict) else None
        high = self.alerts.get(name, self.SHT3X_DEFAULT_HIGH_C)
        return isinstance(temp, (int, float)) and temp >= high

    def next_change(self):
        """World ms of the next scheduled step change (a driven CSV row), or None."""
        return self._series[0][0] if self._series else None

    # --- leases (emu.hal_ops.lease): how long the reads stay as they are now -----------------
    def steady_until(self, t0, t1):
        """World ms up to which (at most `t1`) every read stays what it is at `t0` (now, the
        state integrated to it), but for the pulse counters (pulse_steps); `t0` when the
        world cannot tell. A value below `t1` is the instant something changes: a wake
        there is not leased. A kind whose state moves by itself (a draining battery, a filling
        bin, the sun) says nothing: no lease, every wake a round trip, as before."""
        return t0

    def pulse_steps(self, role, t0, t1, limit):
        """(world ms of each +1 of counter `role` in (t0, t1], at most `limit` of them;
        how far that list is complete), or None when the world cannot tell."""
        return None

    def adc_mv(self, role):
        if role == "battery":
            return self.values["battery_mv"]
        return 0

    def input(self, role):
        return False

    def sensor(self, name):
        raise HardwareFault(f"sensor {name!r} does not answer: not fitted on a "
                            f"{self.kind or 'generic'} device")

    def card_uid(self):
        return None

    def output(self, role, value):
        self.outputs[role] = value
        self.on_output(role, value)

    def on_output(self, role, value):
        """Hook: outputs that feed back into the world (a closed valve stops the flow)."""

    def output_state(self, role):
        return self.outputs.get(role, False)

    def snapshot(self):
        return {"kind": self.kind, "t_s": round(self.t / 1000.0, 3), "values": dict(self.values),
                "outputs": dict(self.outputs), "faults": {k: v[0] for k, v in self.faults.items()},
                "driven_rows": len(self._series)}
