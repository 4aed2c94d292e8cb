"""Hardware-in-the-loop test harness: one suite against emulated or real boards."""
