# Solar smart bin configuration (rule format: firmware/core/schema.py). Plain data: the host
# executes this file to validate a config before sending it.
SCHEMA = {
    "guard_s": ("int", 300, 30, 3600),           # temperature (fire), tilt, lid: never stretched
    "sample_s": ("int", 1800, 300, 86400),       # fill level and battery (stretched when saving)
    "report_s": ("int", 3600, 600, 86400),       # journal + send over the modem (stretched)
    "depth_mm": ("int", 1000, 200, 4000),        # sensor to the floor of the empty bin
    "full_mm": ("int", 150, 30, 1000),           # sensor to the waste surface at 100%
    "echoes": ("int", 5, 1, 9),                  # echoes per measurement; the median is used
    "full_pct": ("int", 85, 10, 100),            # ready for collection at or above
    "compact_pct": ("int", 70, 10, 100),         # start a compaction at or above
    "empty_pct": ("int", 15, 0, 90),             # a drop to this (not by compaction): collected
    "amber_pct": ("int", 60, 0, 100),            # LED amber from here, red when ready
    "compact_s": ("int", 30, 5, 300),            # one press stroke
    "compact_gap_s": ("int", 1800, 60, 86400),   # at least this between compactions
    "motor_limit_ma": ("int", 6000, 500, 30000),  # current limit: above it twice = jam
    "motor_poll_ms": ("int", 1000, 200, 10000),
    "jam_retries": ("int", 1, 0, 5),             # retries after a jam, then locked until service
    "jam_retry_s": ("int", 3600, 60, 86400),
    "fire_c": ("float", 70.0, 40.0, 150.0),      # inside temperature that means fire
    "fire_rise_c": ("float", 20.0, 5.0, 100.0),  # or this rise between two guard readings
    "lid_open_s": ("int", 600, 30, 86400),       # lid left open this long: alarm
    "max_age_days": ("int", 7, 1, 60),           # waste this old is collected whatever the fill
    "battery_mah": ("int", 4000, 100, 200000),
    "battery_floor_pct": ("int", 10, 0, 50),     # the reserve estimate counts down to this
    "saving_pct": ("int", 40, 5, 90),            # below: sample x2, report x4
    "critical_pct": ("int", 20, 1, 80),          # below: sample x4, report x12, no compaction
    "compact_min_pct": ("int", 35, 0, 100),      # no compaction below this state of charge
    "fill_step_pct": ("int", 3, 1, 50),          # a rise of this much counts as a fill event
    "alarm_events_per_day": ("int", 6, 1, 100),
}
