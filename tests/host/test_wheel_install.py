"""`pip install` of the built wheel gives a working edgekit: the wheel is built from the files a
source distribution carries, installed into a fresh venv (dependencies from the package index,
as a user gets them), and a technician's short day runs there from a folder outside the
checkout, with nothing of the checkout on the path: fleet keys, an emulated bare board flashed
and provisioned, an OTA bundle built and signed.

One test, ~30 s (build ~3 s, venv and install ~8 s, flashing the board ~11 s of it)."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit.paths import IN_CHECKOUT, ROOT

# What MANIFEST.in and pyproject.toml put in a source distribution.
SDIST = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "host_tools", "firmware",
         "boards", "protocol")
# pip's own messages when the index cannot be reached: the one reason to skip.
OFFLINE = re.compile(r"NewConnectionError|Temporary failure in name resolution|Network is "
                     r"unreachable|ConnectTimeout|ProxyError|Failed to establish a new connection")
PASSPHRASE = "wheel test passphrase"


def pip(*args, cwd=None):
    # Few retries and a short timeout: an unreachable index should skip in seconds, not minutes.
    env = dict(os.environ, PIP_RETRIES="1", PIP_DEFAULT_TIMEOUT="20")
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0 and OFFLINE.search(proc.stdout + proc.stderr):
        pytest.skip("the package index is unreachable: pip cannot fetch the build backend "
                    "or edgekit's dependencies")
    assert proc.returncode == 0, f"{' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture
def installed(tmp_path):
    if not IN_CHECKOUT:
        pytest.skip("builds the wheel from a checkout; this edgekit is an installed one")
    src = tmp_path / "src"
    for name in SDIST:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, src / name, ignore=shutil.ignore_patterns(
                "__pycache__", "*.pyc", "*.mpy", "*.egg-info"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy(source, src / name)
    build = pip(sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w",
                str(tmp_path / "dist"), ".", cwd=src)
    # -v shows the build backend's output: setuptools' deprecation warnings (`project.license`
    # as a TOML table was one) are what `make demo`'s install printed
    warned = [line for line in (build.stdout + build.stderr).splitlines()
              if re.search(r"deprecat|BuildBackendWarning", line, re.I)]
    assert not warned, "\n".join(warned)
    wheel, = (tmp_path / "dist").glob("edgekit-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip(str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel))
    return venv / "bin"


def test_the_installed_wheel_runs_a_technicians_day(installed, tmp_path):
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "EDGEKIT_ROOT") and not k.startswith("EDGEKIT_")}
    env.update(PATH=f"{installed}{os.pathsep}/usr/bin:/bin", EDGEKIT_HOME=str(home),
               EDGEKIT_KEY_PASSPHRASE=PASSPHRASE, XDG_CACHE_HOME=str(tmp_path / "cache"))

    def edgekit(*args, timeout=180):
        proc = subprocess.run([str(installed / "edgekit"), *args], cwd=work, env=env,
                              capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, f"edgekit {' '.join(args)}: {proc.returncode}\n{proc.stderr}"
        return proc.stdout

    # The package runs from the venv, its trees from the wheel's copies, not from the checkout.
    where = subprocess.run([str(installed / "python"), "-c",
                            "import edgekit.paths as p; print(p.ROOT, p.IN_CHECKOUT)"],
                           cwd=work, env=env, capture_output=True, text=True, check=True)
    data, in_checkout = where.stdout.split()
    assert Path(data).is_relative_to(installed.parent) and Path(data).name == "_data"
    assert in_checkout == "False"
    assert edgekit("--version").strip() == "edgekit 0.1.0"

    edgekit("keys", "init")
    try:
        board = json.loads(edgekit("emu", "start", "--board", "esp32s3_psram", "--bare",
                                   "--json"))
        port = f"emu:{board['id']}"
        flashed = json.loads(edgekit("flash", port, "--board", "esp32s3_psram", "--kind",
                                     "water_meter", "--json", timeout=300))
        assert flashed["ok"] == 1 and flashed["devices"][0]["sent"] > 20
        provisioned = json.loads(edgekit("provision", port, "--kind", "water_meter",
                                         "--site", "depot", "--json"))
        assert provisioned["ok"] == 1
        device_id = provisioned["devices"][0]["device_id"]
        assert [d["device_id"] for d in json.loads(edgekit("devices", "list", "--json"))] \
            == [device_id]
    finally:
        subprocess.run([str(installed / "edgekit"), "emu", "stop", "--all"], cwd=work, env=env,
                       capture_output=True, timeout=60)

    built = json.loads(edgekit("ota", "build", "--board", "esp32s3_psram", "--kind",
                               "water_meter", "--version", "1.4.0", "--seq", "140",
                               "--out", "wm.ekota", "--json"))
    assert built["kind"] == "water_meter" and built["files"]
    edgekit("ota", "sign", "wm.ekota")
    inspected = json.loads(edgekit("ota", "inspect", "wm.ekota", "--json"))
    assert inspected["signed"] is True and inspected["version"] == "1.4.0"
