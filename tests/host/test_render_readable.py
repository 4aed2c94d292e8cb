"""`edgekit command`'s answer as a person reads it (operate/render.py readable_lines): no
Python reprs, units from the field names, ISO 8601 times, floats without noise."""
from edgekit.operate.render import readable_lines, scalar_text


def test_scalars():
    assert scalar_text("flow_lpm", 3.6666667461395264) == "3.66667 L/min"
    assert scalar_text("volume_ml", 240000) == "240000 mL"
    assert scalar_text("uptime_s", 7200) == "7200 s (2 h 0 min)"
    assert scalar_text("uptime_s", 59) == "59 s"
    assert scalar_text("awake_ms", 90061000) == "90061000 ms (1 d 1 h)"
    assert scalar_text("synced_at", 1796169600) == "2026-12-02T00:00:00Z"
    assert scalar_text("time", 1796169600) == "2026-12-02T00:00:00Z"
    assert scalar_text("device_time", 7200) == "7200"      # device seconds, not a date
    assert scalar_text("uid", b"\x04\x01") == "0401"
    assert scalar_text("cert", bytes(100)) == "<100 bytes>"
    assert scalar_text("valve", True) == "yes" and scalar_text("x", None) == "-"
    assert scalar_text("heap_free", 48352) == "48352 B"
    assert scalar_text("count", 2.0) == "2"


def test_maps_nest_and_rows_go_one_a_line():
    out = readable_lines({"valve": False, "alarms": [], "power": {"awake_ms": 5},
                          "history": [[0, 120000], [1, 5]], "roles": ["tamper", "flow"]},
                         None, "  ")
    assert out == ["  valve: no", "  alarms: -", "  power:", "    awake_ms: 5 ms",
                   "  history: 2 rows", "    0  120000", "    1  5",
                   "  roles: tamper, flow"]
    text = "\n".join(out)
    assert "{" not in text and "[" not in text and "'" not in text
    assert readable_lines(7, "result") == ["result: 7"]
