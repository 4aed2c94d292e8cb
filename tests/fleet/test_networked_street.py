"""`edgekit emu fleet --broker`: a networked street in one command. Boards started and
provisioned through their ports with the broker in their network config report over MQTT to
`fleet serve`, which stores what each of them sends; all through the CLI a developer types."""
import json
import os
import subprocess
import sys
import time

import pytest

pytest.importorskip("amqtt", reason="amqtt (the embedded broker) is not installed: make test "
                                    "installs it")
pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed")

from edgekit.fleet.broker import EmbeddedBroker  # noqa: E402

PASS = "street-test-passphrase"


def edgekit(env, *args, timeout=120):
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


@pytest.fixture
def street(tmp_path):
    env = dict(os.environ, EDGEKIT_HOME=str(tmp_path / "home"),
               EDGEKIT_KEY_PASSPHRASE=PASS)
    assert edgekit(env, "keys", "init").returncode == 0
    broker = EmbeddedBroker().start()
    yield env, broker, tmp_path
    edgekit(env, "emu", "stop", "--all", timeout=60)
    broker.stop()


def test_a_networked_street_reports_through_the_broker(street):
    env, broker, tmp = street
    (tmp / "street.toml").write_text("report_s = 300\n")
    proc = edgekit(env, "emu", "fleet", "--count", "2", "--kind", "water_meter",
                   "--broker", broker.url, "--config", str(tmp / "street.toml"),
                   "--speed", "600", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    devices = [d["device_id"] for d in summary["devices"]]
    assert summary["ok"] == 2 and len(set(devices)) == 2
    deadline = time.monotonic() + 60
    stored = {}
    while time.monotonic() < deadline and not all(stored.get(d) for d in devices):
        served = edgekit(env, "fleet", "serve", "--broker", broker.url, "--duration", "3",
                         "--json")
        assert served.returncode == 0, served.stderr
        assert "connection lost" not in served.stderr    # its own stop is no news
        counts = json.loads(served.stdout)
        assert not any(counts.get("dropped", {}).values()), counts
        for d in devices:
            rows = json.loads(edgekit(env, "devices", "telemetry", d, "--json").stdout)
            stored[d] = len(rows["telemetry"])
    assert all(stored[d] > 0 for d in devices), stored


def test_fleet_broker_options_are_checked_before_any_board_starts(street):
    env, broker, _ = street
    proc = edgekit(env, "emu", "fleet", "--count", "1", "--broker", broker.url)
    assert proc.returncode != 0 and "--kind" in proc.stderr
    proc = edgekit(env, "emu", "fleet", "--count", "1", "--kind", "water_meter",
                   "--broker", broker.url, "--time", "paused")
    assert proc.returncode != 0 and "paused" in proc.stderr
    proc = edgekit(env, "emu", "fleet", "--count", "1", "--site", "x")
    assert proc.returncode != 0 and "--broker" in proc.stderr
    listed = edgekit(env, "emu", "list", "--json")
    assert listed.stdout.strip() in ("", "[]"), listed.stdout     # nothing was started
