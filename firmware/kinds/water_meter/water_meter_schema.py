# Water meter configuration (see firmware/core/schema.py for the rule format). Plain data:
# the host executes this file to validate a config before sending it.
SCHEMA = {
    "litres_per_pulse": ("float", 1.0, 0.001, 1000.0),   # K-factor of the meter's reed output
    "sample_s": ("int", 60, 10, 3600),                   # flow sampling period
    "checkpoint_s": ("int", 900, 60, 86400),             # totalizer checkpoint: max loss window
    "report_s": ("int", 86400, 300, 7 * 86400),          # push telemetry (default daily)
    "privacy": ("enum", "hourly", ("hourly", "fine")),   # fine = per-sample flow records
    "leak_window_h": ("int", 24, 2, 168),                # no zero-flow hour for this long: leak
    "burst_lpm": ("float", 60.0, 1.0, 10000.0),
    "burst_min": ("int", 5, 1, 240),
    "auto_shutoff": ("bool", False),                     # close the valve when burst is set
    "no_flow_days": ("int", 7, 1, 365),                  # empty pipe / vacant premises
    "backflow_l": ("float", 1.0, 0.001, 1000.0),         # reverse volume in a sample to alarm
    "low_battery_mv": ("int", 3300, 2000, 4200),
    "billing_day": ("int", 1, 1, 28),
    "history_days": ("int", 90, 7, 400),                 # hourly history kept on the meter
    "alarm_events_per_day": ("int", 6, 1, 100),
}
