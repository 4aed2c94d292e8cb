"""The network path over TLS end to end (SPEC 13.6): an emulated water meter provisioned with
an mqtts:// broker and its CA (`edgekit provision --broker mqtts://... --ca FILE`) reports
through the embedded broker's TLS listener to the fleet service, which connects with the same
CA; every record is stored once and acknowledged. diag shows that the link is TLS and the
CA's SHA-256, never the certificate. Certificates are made for the run (edgekit.testing.pki)."""
import hashlib
import json

import pytest

pytest.importorskip("amqtt", reason="amqtt (the embedded broker) is not installed: make test "
                                    "installs it")
pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed")

from edgekit import catalog as C  # noqa: E402
from edgekit.cli import main as edgekit  # noqa: E402
from edgekit.fleet.broker import EmbeddedBroker  # noqa: E402
from edgekit.fleet.service import parse_url  # noqa: E402
from edgekit.keys.store import KeyStore  # noqa: E402
from edgekit.testing.pki import CA  # noqa: E402
from operator_cli import fleet_home  # noqa: E402,F401 - a fixture
from fleet_rig import (HOUR, Settled, diag, provision_networked, run_service,  # noqa: E402
                       step_until, stored)

pytestmark = pytest.mark.hil(kind="water_meter")


@pytest.mark.hil(sim_s=7200)  # a wait it needs: skips early on a bench
def test_a_meter_reports_over_mqtts(board, world, clock, fleet_home, capsys, tmp_path):
    ca = CA(tmp_path / "pki")
    cert, key = ca.server(("localhost",))
    broker = EmbeddedBroker(tls_cert=cert, tls_key=key).start()
    url = f"mqtts://localhost:{broker.port}"
    registry_path, device_id = provision_networked(
        board, fleet_home, capsys, tmp_path, url, {"poll_s": 2}, {"report_s": 1800},
        extra=["--ca", str(ca.cert_file)])
    keys = KeyStore(fleet_home / "keys")
    address = parse_url(url, ca.cert_file)
    held, stop, thread = run_service(registry_path, keys, *address, broker=address)
    try:
        step_until(clock, lambda: "svc" in held and held["svc"].connected.is_set(), "service")
        svc = held["svc"]
        step_until(clock, lambda: diag(board, capsys)["net"]["connected"], "the TLS connect")
        net = diag(board, capsys)["net"]
        assert net["tls"] and net["ca_sha256"] == hashlib.sha256(ca.der).hexdigest()
        assert ca.der.hex() not in json.dumps(net) and net["failures"] == 0
        world.set(flow_lpm=3.0)
        clock.advance(2 * HOUR)
        step_until(clock, Settled(svc.ingest, device_id), "the journal to empty on the acks",
                   show=svc.ingest.stats)
        d = diag(board, capsys)
        last = d["telemetry"]["last"]
        assert last >= 2 and d["telemetry"]["pending"] == 0
        assert stored(registry_path, device_id) == list(range(1, last + 1))
    finally:
        stop.set()
        thread.join(10)
        broker.stop()


def test_the_commit_takes_only_the_ca_its_session_received(board, hil_fleet, tmp_path):
    """PROV_BEGIN's K_CA is held, not written; PROV_COMMIT's net config must name it by its
    SHA-256. A CA that is not DER, a hash of another CA, or an mqtts broker without a CA is
    refused (bad_request) and leaves the board factory-fresh."""
    import os

    from edgekit.errors import ProtocolError
    from edgekit.protocol import messages
    from edgekit.protocol.session import Session
    from edgekit.provision import flow
    ca, other = CA(tmp_path / "a"), CA(tmp_path / "b", "other CA")
    with board.transport() as t:
        s = Session(t, timeout=5)
        caps = s.hello()
        if caps.payload[C.K_STATE] != "factory":
            pytest.skip("needs a factory-fresh board (reprovision it first)")
        fleet = hil_fleet.fleet
        nonce = os.urandom(16)
        begin = {C.K_NONCE: nonce, C.K_FLEET: fleet.fleet_id, C.K_KIND: "water_meter"}
        with pytest.raises(ProtocolError) as info:
            s.request(C.PROV_BEGIN, {**begin, C.K_CA: b"\x30\x82\x00\x10" + bytes(9)},
                      sign=False, expect=C.PROV_KEY)
        assert info.value.code == C.E_BAD_REQUEST and "DER certificate" in str(info.value)
        key_msg = s.request(C.PROV_BEGIN, {**begin, C.K_CA: ca.der}, sign=False,
                            expect=C.PROV_KEY)
        pub = key_msg.payload[C.K_PUB]
        cert = flow.issue_certificate(fleet, flow.device_id_for("water_meter", pub), pub,
                                      "water_meter", caps.payload[C.K_BOARD],
                                      key_msg.payload[C.K_HWID], "hil")
        commit = {C.K_NONCE: nonce, C.K_CERT: cert, C.K_ANCHORS: fleet.anchors,
                  C.K_EPOCH: fleet.epoch, C.K_REVOKED: fleet.revoked, C.K_CONFIG: {}}
        broker = "mqtts://fleet.example:8883"
        for net, what in [
                ({"broker": broker, "ca_sha256": hashlib.sha256(other.der).digest()},
                 "ca_sha256 names no CA"),
                ({"broker": broker}, "needs its CA certificate"),
                ({"broker": "mqtt://fleet.example", "ca_sha256":
                  hashlib.sha256(ca.der).digest()}, "only for an mqtts:// broker")]:
            with pytest.raises(ProtocolError) as info:
                s.request(C.PROV_COMMIT, {**commit, C.K_NET: net}, sign=False,
                          expect=C.PROV_DONE, timeout=10)
            assert info.value.code == C.E_BAD_REQUEST and what in str(info.value)
            assert s.hello().payload[C.K_STATE] == "factory"      # nothing was committed
        s.device_keys = messages.Keyring()
        s.device_keys.add(pub, C.ROLE_DEVICE)
        net = {"broker": broker, "ca_sha256": hashlib.sha256(ca.der).digest()}
        done = s.request(C.PROV_COMMIT, {**commit, C.K_NET: net}, sign=False,
                         expect=C.PROV_DONE, timeout=10)
        assert done.role == C.ROLE_DEVICE
