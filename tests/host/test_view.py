"""`edgekit view`: the fleet page as served (map dots coloured by each device's alarms, the
registry table, a device's charts with the bin's forecast), read-only; and in a real headless
Chromium, a screenshot whose pixels at each device's map position have the colour its data
says (red: an active alarm, green: healthy, grey: never heard)."""
import json
import re
import shutil
import struct
import subprocess
import threading
import urllib.error
import urllib.request
import zlib

import pytest

from edgekit import catalog as C
from edgekit.registry import telemetry as store
from edgekit.registry.db import Registry
from edgekit.view import page
from edgekit.view.server import make_server

T = 1796169600.0


def _fleet(path):
    with Registry(path) as reg:
        reg.upsert_device("wm-1", kind="water_meter", location=(52.3731, 4.8922))
        reg.upsert_device("bin-1", kind="smart_bin", location=(52.3702, 4.8952))
        reg.upsert_device("env-1", kind="env_sensor", location=(52.3760, 4.8990))
        reg.upsert_device("atm-1", kind="water_atm")                 # no location
        for dev in ("wm-1", "bin-1"):
            reg.touch(dev, 5)
        hours = [{C.SENML_BN: "urn:dev:ek:wm-1:", C.SENML_BT: T, C.SENML_N: "consumption",
                  C.SENML_V: 10.0, C.SENML_U: "l"}]
        hours += [{C.SENML_N: "consumption", C.SENML_V: 10.0 + h, C.SENML_T: 3600 * h}
                  for h in range(1, 24)]
        store.store(reg, "wm-1", packs=[(1, hours)],
                    events=[(1, {C.K_NAME: "leak", C.K_ACTIVE: True, C.K_TIME: int(T)}),
                            (2, {C.K_NAME: "tamper", C.K_ACTIVE: True, C.K_TIME: int(T)}),
                            (3, {C.K_NAME: "tamper", C.K_ACTIVE: False, C.K_TIME: int(T)})],
                    received=T)
        fills = [{C.SENML_BN: "urn:dev:ek:bin-1:", C.SENML_BT: T, C.SENML_N: "fill",
                  C.SENML_V: 20.0, C.SENML_U: "%"},
                 {C.SENML_N: "fill", C.SENML_V: 40.0, C.SENML_T: 7200},
                 {C.SENML_N: "full_in", C.SENML_V: 14400.0, C.SENML_T: 7200, C.SENML_U: "s"}]
        store.store(reg, "bin-1", packs=[(1, fills)], received=T)


@pytest.fixture
def served(tmp_path):
    path = tmp_path / "r.sqlite"
    _fleet(path)
    server = make_server(path, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def test_pages_say_what_the_registry_holds(served):
    html = get(served + "/")
    dots = dict(re.findall(r'fill="(#[0-9a-f]{6})" data-device="([^"]+)"', html)[i][::-1]
                for i in range(3))
    assert dots == {"wm-1": page.RED, "bin-1": page.GREEN, "env-1": page.GREY}
    assert "not on the map (no location): atm-1" in html
    assert "leak" in html and "tamper" not in html.split("wm-1</a>")[1].split("</tr>")[0]
    meter = get(served + "/device/wm-1")
    assert "active alarms: leak" in meter
    assert 'data-points="24"' in meter                          # 24 hourly consumptions
    bin_page = get(served + "/device/bin-1")
    assert 'class="forecast"' in bin_page and 'data-points="2"' in bin_page
    assert json.loads(get(served + "/devices.json"))[0]["device_id"] == "atm-1"
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(urllib.request.Request(served + "/", data=b"x", method="POST"))
    assert info.value.code == 405                               # read-only
    with pytest.raises(urllib.error.HTTPError) as info:
        get(served + "/device/nope")
    assert info.value.code == 404


def _png_pixels(data):
    """(width, height, rows of (r, g, b)) of a non-interlaced 8-bit RGB/RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(height):
        f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b, c = prev[x], prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x:x + 3]) for x in range(0, stride, bpp)])
        prev = line
    return width, height, rows


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian package chromium; "
                                             ".ci/run installs it as root)")
def test_a_real_browser_shows_each_device_in_its_colour(served, tmp_path):
    shot = tmp_path / "fleet.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=800,600",
                    f"--screenshot={shot}", served + "/"],
                   check=True, capture_output=True, timeout=120)
    width, height, px = _png_pixels(shot.read_bytes())
    html = get(served + "/")
    where = {d: (float(x), float(y)) for x, y, d in re.findall(
        r'<circle cx="([\d.]+)" cy="([\d.]+)" r="9" fill="#[0-9a-f]{6}" data-device="([^"]+)"',
        html)}
    want = {"wm-1": page.RED, "bin-1": page.GREEN, "env-1": page.GREY}
    for dev, (x, y) in where.items():
        r, g, b = px[int(round(y))][int(round(x))]
        hexc = want[dev].lstrip("#")
        exp = tuple(int(hexc[i:i + 2], 16) for i in (0, 2, 4))
        assert max(abs(r - exp[0]), abs(g - exp[1]), abs(b - exp[2])) <= 12, \
            (dev, (r, g, b), want[dev])
    # and the map's background is not a device colour: the dots are what is coloured
    assert px[2][2] != px[int(where["wm-1"][1])][int(where["wm-1"][0])]


def test_the_command_serves_on_localhost_only_unless_told(tmp_path):
    import os
    import sys
    path = tmp_path / "r.sqlite"
    _fleet(path)
    env = dict(os.environ, EDGEKIT_HOME=str(tmp_path))
    refused = subprocess.run([sys.executable, "-m", "edgekit.cli", "view", "--registry",
                              str(path), "--host", "0.0.0.0"], capture_output=True, text=True,
                             env=env, timeout=30)
    assert refused.returncode == 2 and "--public" in refused.stderr
    proc = subprocess.Popen([sys.executable, "-m", "edgekit.cli", "view", "--registry",
                             str(path), "--port", "0", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = json.loads(proc.stdout.readline())["url"]
        assert url.startswith("http://127.0.0.1:")
        assert "wm-1" in get(url)
    finally:
        proc.terminate()
        proc.wait(10)
