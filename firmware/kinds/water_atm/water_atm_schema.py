# Water ATM (prepaid water kiosk) configuration (rule format: firmware/core/schema.py). Plain
# data: the host executes this file to validate a config before sending it. Prices are not
# here: they are ledger records set by the operator's `prices` command, so every charge can
# be replayed against the prices in force.
SCHEMA = {
    "mode": ("enum", "preset", ("preset", "payf")),   # fixed volume, or while the card stays
    "preset_l": ("int", 20, 1, 200),             # a jerrycan
    "ml_per_pulse": ("float", 10.0, 0.1, 1000.0),  # flow meter K-factor
    "poll_ms": ("int", 500, 100, 5000),          # card reader and scanner, when idle
    "flow_poll_ms": ("int", 500, 100, 2000),     # meter, while dispensing
    "grant_ml": ("int", 1000, 100, 20000),       # water authorised ahead of the meter
    "no_flow_s": ("int", 10, 2, 120),            # valve open, meter still: fault
    "settle_ms": ("int", 1500, 0, 10000),        # metering on while the valve closes
    "charge_overrun": ("bool", True),            # False: the kiosk absorbs water past the preset
    "balance_cap": ("int", 100000, 1, 2147483647),  # no balance above this (money units)
    "auto_enrol": ("bool", False),               # unknown cards become empty water cards
    "max_cards": ("int", 200, 10, 2000),
    "max_unacked": ("int", 800, 50, 4000),       # ledger records the host has not fetched
    "service_l": ("int", 5, 1, 50),              # flush run by a service card (recorded, free)
    "leak_ml": ("int", 200, 10, 100000),         # metered with the valve shut: leak record
    "plant_s": ("int", 300, 10, 3600),           # tank and water quality
    "report_s": ("int", 3600, 300, 86400),
    "tank_empty_mv": ("int", 500, 0, 5000),      # level transducer calibration
    "tank_full_mv": ("int", 4000, 0, 5000),
    "tank_low_pct": ("int", 20, 0, 100),         # warning: keeps dispensing
    "tank_empty_pct": ("int", 5, 0, 100),        # alarm: out of service
    "water_temp_c": ("float", 25.0, 0.0, 50.0),  # for the TDS temperature compensation
    "tds_warn_ppm": ("int", 300, 0, 5000),       # warning
    "tds_max_ppm": ("int", 600, 0, 5000),        # alarm (WHO: above 600 mg/l tastes poor)
    "ntu_zero_mv": ("int", 4200, 0, 5000),       # turbidity probe at 0 NTU
    "ntu_mv_per_ntu": ("float", 40.0, 0.01, 1000.0),
    "ntu_warn": ("float", 1.0, 0.0, 1000.0),     # warning (WHO: ideally below 1 NTU)
    "ntu_max": ("float", 5.0, 0.0, 1000.0),      # alarm (WHO: 5 NTU)
    "alarm_events_per_day": ("int", 6, 1, 100),
}
