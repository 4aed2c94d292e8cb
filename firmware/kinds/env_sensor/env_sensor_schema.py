# Environmental sensor node configuration (rule format: firmware/core/schema.py). Plain data:
# the host executes this file to validate a config before sending it.
#
# Threshold alarms, one rule per quantity: <q>_alarm is the mode (off, above, below, between,
# outside: thresholds.py), <q>_lo / <q>_hi the limits, <q>_hyst the dead band a
# reading must cross back over before the alarm clears. Defaults: PM2.5 above 50 ug/m3 and
# PM10 above 100 ug/m3 (the "very poor" bands of the European Air Quality Index, 1-hour).
_MODES = ("off", "above", "below", "between", "outside")

SCHEMA = {
    "sample_s": ("int", 60, 10, 3600),           # temperature, humidity, noise, battery
    "report_s": ("int", 900, 60, 86400),         # one mean/min/max/quality pack per window
    "push_s": ("int", 3600, 300, 7 * 86400),     # send pending telemetry; retried with backoff
    "pm_period_s": ("int", 300, 60, 3600),       # PM sensor duty cycle (powered on each period)
    "pm_warmup_s": ("int", 30, 0, 120),          # readings in this time after power-on: dropped
    "pm_readings": ("int", 5, 1, 20),            # kept readings per cycle, averaged
    "pm_gap_ms": ("int", 1000, 200, 10000),      # between kept readings
    "pm_kappa": ("float", 0.4, 0.0, 1.5),        # hygroscopic growth for the RH correction
    "temp_offset": ("float", 0.0, -10.0, 10.0),  # calibration, added to the SHT31 reading
    "rh_offset": ("float", 0.0, -20.0, 20.0),
    "alarm_hold_s": ("int", 0, 0, 86400),        # a threshold must hold this long to set/clear
    "alarm_events_per_day": ("int", 6, 1, 100),
    "low_battery_mv": ("int", 3400, 2000, 4200),
    "pm25_alarm": ("enum", "above", _MODES),
    "pm25_lo": ("float", 0.0, 0.0, 1000.0),
    "pm25_hi": ("float", 50.0, 0.0, 1000.0),
    "pm25_hyst": ("float", 5.0, 0.0, 500.0),
    "pm10_alarm": ("enum", "above", _MODES),
    "pm10_lo": ("float", 0.0, 0.0, 1000.0),
    "pm10_hi": ("float", 100.0, 0.0, 1000.0),
    "pm10_hyst": ("float", 10.0, 0.0, 500.0),
    "temp_alarm": ("enum", "off", _MODES),
    "temp_lo": ("float", -10.0, -40.0, 125.0),
    "temp_hi": ("float", 35.0, -40.0, 125.0),
    "temp_hyst": ("float", 1.0, 0.0, 50.0),
    "rh_alarm": ("enum", "off", _MODES),
    "rh_lo": ("float", 20.0, 0.0, 100.0),
    "rh_hi": ("float", 90.0, 0.0, 100.0),
    "rh_hyst": ("float", 3.0, 0.0, 50.0),
    "noise_alarm": ("enum", "off", _MODES),
    "noise_lo": ("float", 30.0, 0.0, 140.0),
    "noise_hi": ("float", 70.0, 0.0, 140.0),
    "noise_hyst": ("float", 3.0, 0.0, 50.0),
}
