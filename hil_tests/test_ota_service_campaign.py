"""A campaign run by the fleet service (issue 15, SPEC 13.7): `ota campaign start --via fleet
--by-service` leaves it in the registry and returns; `edgekit fleet serve` (a process, as an
operator runs it) claims it and updates the meters through the broker. Paused, the service
starts no device; resumed, it goes on. A meter whose network is down during the first
attempt is left unreachable and updated on a later attempt once it is back, with nobody
watching a terminal."""
import json
import os
import subprocess
import sys
import time

import pytest

pytest.importorskip("amqtt", reason="amqtt (the embedded broker) is not installed: make test "
                                    "installs it")
pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed")

from edgekit.cli import main as edgekit  # noqa: E402
from edgekit.fleet.broker import EmbeddedBroker  # noqa: E402
from edgekit.registry.db import Registry  # noqa: E402
from fleet_rig import provision_networked  # noqa: E402
from operator_cli import fleet_home  # noqa: E402,F401 - a fixture
from ota_rig import signed_bundle, wait_connected  # noqa: E402

pytestmark = pytest.mark.hil(kind="water_meter", time="real",
                             bench="fault injection (a board's Wi-Fi) needs the emulator")


@pytest.fixture
def broker():
    b = EmbeddedBroker().start()
    yield b
    b.stop()


def status(capsys, name):
    assert edgekit(["ota", "campaign", "status", name, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def wait_status(capsys, name, pred, what, limit_s=240, service=None):
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        report = status(capsys, name)
        if pred(report):
            return report
        assert service is None or service.poll() is None, "fleet serve exited"
        time.sleep(0.5)
    raise AssertionError(f"no {what}: {report['state']} {report['counts']} {report['note']}")


@pytest.mark.hil(boards=2)
def test_the_service_runs_a_campaign_pauses_and_retries_a_device_that_was_away(
        boards, broker, fleet_home, capsys, tmp_path):
    by_id = {}
    for board in boards:
        by_id[provision_networked(board, fleet_home, capsys, tmp_path, broker.url,
                                  {"poll_s": 1})[1]] = board
    for board in boards:
        wait_connected(board, capsys)
    canary, second = sorted(by_id)
    path = signed_bundle(fleet_home, "1.0.8", 8, app_only=True).save(tmp_path / "wm.ekota")
    via = ["--via", "fleet", "--broker", broker.url, "--by-service", "--json"]

    # Left to the service, then paused before any service runs: nothing is pushed from here.
    assert edgekit(["ota", "campaign", "start", str(path), "--name", "by-svc", "--stages",
                    "1,100%"] + via) == 0
    assert json.loads(capsys.readouterr().out) == {"campaign": "by-svc", "state": "planned",
                                                   "driver": "service"}
    assert edgekit(["ota", "campaign", "pause", "by-svc", "--json"]) == 0
    capsys.readouterr()
    by_id[second].world.set(network=False)      # the second meter is away for a while

    log = open(tmp_path / "serve.log", "w")
    service = subprocess.Popen(
        [sys.executable, "-m", "edgekit.cli", "fleet", "serve", "--broker", broker.url,
         "--campaign-poll", "0.5", "--campaign-retry", "3", "--campaign-patience", "8"],
        stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        time.sleep(3)           # six polls of the registry: a paused campaign is not claimed
        report = status(capsys, "by-svc")
        assert report["state"] == "paused" and report["counts"] == {"pending": 2}

        assert edgekit(["ota", "campaign", "resume", "by-svc"] + via) == 0
        assert json.loads(capsys.readouterr().out)["state"] == "running"
        # The canary is updated; the second meter, offline, is left for a later attempt.
        report = wait_status(capsys, "by-svc", lambda r: r["counts"].get("unreachable"),
                             "the away meter left unreachable", service=service)
        rows = {d["device_id"]: d["status"] for d in report["devices"]}
        assert rows == {canary: "installed", second: "unreachable"}
        assert report["state"] == "running"

        by_id[second].world.set(network=True)   # back: the service's next attempt takes it
        report = wait_status(capsys, "by-svc", lambda r: r["state"] == "done",
                             "the campaign to finish", service=service)
        assert report["counts"] == {"installed": 2}
        with Registry(fleet_home / "registry.sqlite") as reg:
            assert all(reg.get(d)["fw_version"] == "1.0.8" for d in by_id)
        # A finished campaign cannot be paused.
        assert edgekit(["ota", "campaign", "pause", "by-svc"]) != 0
        assert "is done" in capsys.readouterr().err
    finally:
        service.terminate()
        service.wait(30)
        log.close()
    logged = (tmp_path / "serve.log").read_text()
    assert "campaign by-svc: done" in logged, logged[-2000:]
