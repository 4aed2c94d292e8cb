"""The fleet as HTML a browser shows with no script and no external server: the registry, a
map of located devices drawn as SVG (no tile server: the page must work offline and send no
device position anywhere), each device's state and active alarms, and charts of its stored
telemetry (a meter's hourly consumption, a bin's fill with its forecast to full).

Colours carry the state, so a screenshot can be checked against the data: a device with an
active alarm is red (#d62728), one without is green (#2ca02c), one never heard from grey.
"""
import html
import math
from datetime import datetime, timezone

from edgekit.registry import telemetry as store

RED, GREEN, GREY = "#d62728", "#2ca02c", "#7f7f7f"
MAP_W, MAP_H, MAP_PAD = 600, 400, 30
CHART_W, CHART_H = 560, 160
# per kind: the records charted (name, label)
CHARTS = {"water_meter": [("consumption", "hourly consumption"), ("volume", "meter total")],
          "water_atm": [("dispensed", "litres dispensed"), ("tank", "tank level")],
          "smart_bin": [("fill", "fill level")],
          "env_sensor": [("pm25", "PM2.5"), ("temp", "temperature"), ("noise", "noise")]}

_STYLE = """body{font-family:sans-serif;margin:0;background:#fff;color:#111}
#map{position:absolute;left:0;top:0}
#rest{position:absolute;left:0;top:410px;padding:8px}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}"""


def esc(text):
    return html.escape("" if text is None else str(text))


def active_alarms(events):
    """Names whose latest event is 'set', from stored device events in journal order."""
    state = {}
    for e in events:
        state[e["name"]] = bool(e["active"])
    return sorted(n for n, on in state.items() if on)


def colour(device, alarms):
    if alarms:
        return RED
    return GREEN if device.get("last_seen") else GREY


def project(devices):
    """{device_id: (x, y)} on the MAP_W x MAP_H map: equirectangular around the fleet's
    centre (longitude scaled by cos(latitude)), fitted with MAP_PAD pixels of margin."""
    pts = {d["device_id"]: (d["lat"], d["lon"]) for d in devices
           if d.get("lat") is not None and d.get("lon") is not None}
    if not pts:
        return {}
    lats = [p[0] for p in pts.values()]
    lons = [p[1] for p in pts.values()]
    k = math.cos(math.radians((min(lats) + max(lats)) / 2))
    span_x = max((max(lons) - min(lons)) * k, 1e-9)
    span_y = max(max(lats) - min(lats), 1e-9)
    scale = min((MAP_W - 2 * MAP_PAD) / span_x, (MAP_H - 2 * MAP_PAD) / span_y)
    cx, cy = (min(lons) + max(lons)) / 2, (min(lats) + max(lats)) / 2
    return {i: (round(MAP_W / 2 + (lon - cx) * k * scale, 1),
                round(MAP_H / 2 - (lat - cy) * scale, 1)) for i, (lat, lon) in pts.items()}


def fleet_page(devices, alarms_by_device):
    xy = project(devices)
    dots = "".join(
        f'<a href="/device/{esc(i)}"><circle cx="{x}" cy="{y}" r="9" '
        f'fill="{colour(d, alarms_by_device[i])}" data-device="{esc(i)}">'
        f'<title>{esc(i)}</title></circle></a>'
        for d in devices for i in [d["device_id"]] if i in xy for x, y in [xy[i]])
    rows = "".join(
        f"<tr><td><a href=\"/device/{esc(d['device_id'])}\">{esc(d['device_id'])}</a></td>"
        f"<td>{esc(d['kind'])}</td><td>{esc(d['status'])}</td><td>{esc(d.get('site'))}</td>"
        f"<td>{esc(d.get('fw_version'))}</td><td>{esc(d.get('last_seen') or '-')}</td>"
        f"<td>{esc(', '.join(alarms_by_device[d['device_id']]) or '-')}</td></tr>"
        for d in devices)
    unlocated = [d["device_id"] for d in devices if d["device_id"] not in xy]
    return (f"<!doctype html><html><head><meta charset=utf-8><title>edgekit fleet</title>"
            f"<style>{_STYLE}</style></head><body>"
            f'<svg id="map" width="{MAP_W}" height="{MAP_H}" viewBox="0 0 {MAP_W} {MAP_H}">'
            f'<rect width="{MAP_W}" height="{MAP_H}" fill="#f4f4f0"/>{dots}</svg>'
            f"<div id=rest><h1>{len(devices)} devices</h1>"
            + (f"<p>not on the map (no location): {esc(', '.join(unlocated))}</p>"
               if unlocated else "")
            + "<table><tr><th>device</th><th>kind</th><th>status</th><th>site</th>"
              "<th>firmware</th><th>last seen</th><th>active alarms</th></tr>"
            + rows + "</table></div></body></html>")


def _iso(unix):
    return datetime.fromtimestamp(unix, timezone.utc).isoformat(timespec="minutes") \
        .replace("+00:00", "Z")


def chart(rows, label, unit, forecast=None):
    """An SVG line chart of (unix, value) rows; `forecast`: (unix, value) the line continues
    to, dashed (a bin's fill reaching full)."""
    pts = [(r["unix"], r["value"]) for r in rows if r.get("value") is not None]
    if not pts:
        return ""
    ends = pts + ([forecast] if forecast else [])
    t0, t1 = min(p[0] for p in ends), max(p[0] for p in ends)
    v0, v1 = min(0.0, min(p[1] for p in ends)), max(p[1] for p in ends) or 1.0
    sx = (CHART_W - 60) / max(t1 - t0, 1)
    sy = (CHART_H - 30) / max(v1 - v0, 1e-9)

    def xy(p):
        return f"{50 + (p[0] - t0) * sx:.1f},{CHART_H - 20 - (p[1] - v0) * sy:.1f}"
    line = " ".join(xy(p) for p in pts)
    dash = (f'<polyline class="forecast" points="{xy(pts[-1])} {xy(forecast)}" fill="none" '
            f'stroke="{RED}" stroke-dasharray="6,4"/>' if forecast else "")
    return (f'<h3>{esc(label)} ({esc(unit or "")})</h3>'
            f'<svg class="chart" width="{CHART_W}" height="{CHART_H}" data-points="{len(pts)}">'
            f'<text x="2" y="12" font-size="11">{v1:g}</text>'
            f'<text x="2" y="{CHART_H - 20}" font-size="11">{v0:g}</text>'
            f'<text x="50" y="{CHART_H - 4}" font-size="11">{_iso(t0)}</text>'
            f'<text x="{CHART_W - 150}" y="{CHART_H - 4}" font-size="11">{_iso(t1)}</text>'
            f'<polyline class="data" points="{line}" fill="none" stroke="#1f77b4" '
            f'stroke-width="2"/>{dash}</svg>')


def device_page(device, records, events):
    alarms = active_alarms(events)
    charts = []
    for name, label in CHARTS.get(device["kind"], ()):
        rows = [r for r in records if r["name"] == name and r.get("value") is not None]
        forecast = None
        if name == "fill" and rows:
            full_in = [r for r in records if r["name"] == "full_in" and r.get("value")]
            if full_in:             # the bin's own forecast: full (100%) in `full_in` s
                forecast = (full_in[-1]["unix"] + full_in[-1]["value"], 100.0)
        charts.append(chart(rows, label, rows[0]["unit"] if rows else "", forecast))
    info = "".join(f"<tr><th>{esc(k)}</th><td>{esc(device.get(k))}</td></tr>" for k in
                   ("device_id", "kind", "status", "site", "owner", "purpose", "fw_version",
                    "key_epoch", "last_seen", "clock_drift_s"))
    ev = "".join(f"<tr><td>{esc(e['time'] or e['received_at'])}</td><td>{esc(e['name'])}</td>"
                 f"<td>{'set' if e['active'] else 'cleared'}</td></tr>" for e in events[-20:])
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{esc(device['device_id'])}"
            f"</title><style>{_STYLE}</style></head><body><div style='padding:8px'>"
            f"<p><a href='/'>fleet</a></p><h1>{esc(device['device_id'])}</h1>"
            f"<p id=alarms style='color:{RED if alarms else GREEN}'>active alarms: "
            f"{esc(', '.join(alarms) or 'none')}</p><table>{info}</table>"
            + "".join(charts)
            + (f"<h3>recent events</h3><table>{ev}</table>" if ev else "")
            + "</div></body></html>")


def load(registry, device_id=None):
    """What the pages show, read from `registry` (read only)."""
    devices = registry.list()
    if device_id is None:
        return devices, {d["device_id"]: active_alarms(store.device_events(registry,
                                                                          d["device_id"]))
                         for d in devices}
    device = registry.get(device_id)
    if device is None:
        return None
    return device, store.telemetry(registry, device_id), store.device_events(registry,
                                                                             device_id)
