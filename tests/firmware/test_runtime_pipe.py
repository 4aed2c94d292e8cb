"""The real firmware runtime in micropython behind a pipe: factory HELLO, provisioning end to
end with the host flow, signed CAPS after the reboot, and refusal paths."""
import time

import pytest

from edgekit import catalog as C
from edgekit.errors import EdgekitError, ProtocolError
from edgekit.keys.store import KeyStore
from edgekit.protocol import messages
from edgekit.protocol.session import Session
from edgekit.provision import flow
from edgekit.registry.db import Registry
from edgekit.testing.fleet import TEST_PASSPHRASE, HilFleet
from edgekit.testing.pipe import PipeDevice

PASS = TEST_PASSPHRASE


@pytest.fixture
def fleet(tmp_path):
    return HilFleet(tmp_path).fleet


@pytest.fixture
def device(tmp_path):
    with PipeDevice(tmp_path / "flash") as dev:
        yield dev


def test_factory_hello_is_unsigned_and_reports_state(device):
    s = Session(device, timeout=5)
    caps = s.hello()
    assert caps.role is None and caps.type == C.CAPS
    p = caps.payload
    assert p[C.K_STATE] == "factory" and p[C.K_BOARD] == "esp32"
    assert p[C.K_MAX_FRAME] == 1024 and p[C.K_HWID] == bytes.fromhex("a1b2c3d4e5f60718")
    assert "water_meter" in p[C.K_KIND].split(",")


def test_provision_end_to_end_then_signed_caps(device, fleet, tmp_path):
    reg = Registry(tmp_path / "reg.sqlite")
    s = Session(device, timeout=5)
    steps = []
    row = flow.provision(s, fleet, reg, "env_sensor", "harbour", location=(52.37, 4.89),
                         progress=lambda step, detail="": steps.append(step))
    assert steps[:4] == ["hello", "begin", "certificate", "commit"] and steps[-1] == "record"
    assert row["status"] == "provisioned" and row["kind"] == "env_sensor"
    assert row["device_id"].startswith("env-")
    # the device rebooted into its app: CAPS is now signed by the certified device key
    caps = s.hello()
    assert caps.role == C.ROLE_DEVICE and caps.payload[C.K_DEVICE_ID] == row["device_id"]
    fields = flow.check_certificate(caps.payload[C.K_CERT], fleet.fleet_public)
    assert fields[C.K_PUB] == bytes(row["public_key"])
    assert device.boots == 2
    # rerunning the same command finishes idempotently, without touching the device ...
    again = flow.provision(Session(device, timeout=5), fleet, reg, "env_sensor", "harbour")
    assert again["device_id"] == row["device_id"] and device.boots == 2
    # ... but another kind needs --reprovision, and nothing changes
    with pytest.raises(EdgekitError, match="already provisioned"):
        flow.provision(Session(device, timeout=5), fleet, reg, "water_meter", "harbour")
    assert device.boots == 2


def test_another_fleet_is_refused(device, fleet, tmp_path):
    reg = Registry(tmp_path / "reg.sqlite")
    flow.provision(Session(device, timeout=5), fleet, reg, "water_meter", "north")
    other_ks = KeyStore(tmp_path / "other")
    other_ks.init(PASS)
    other = flow.Fleet(other_ks, other_ks.signer("fleet", PASS))
    with pytest.raises(ProtocolError, match="not signed by this fleet"):
        flow.provision(Session(device, timeout=5), other, Registry(tmp_path / "o.sqlite"),
                       "water_meter", "north")


def test_bad_config_refused_before_anything_is_sent(device, fleet, tmp_path):
    with pytest.raises(EdgekitError, match="unknown setting"):
        flow.provision(Session(device, timeout=5), fleet, Registry(tmp_path / "r.sqlite"),
                       "env_sensor", "x", config={"no_such_key": 1})
    assert Session(device, timeout=5).hello().payload[C.K_STATE] == "factory"


def test_forged_and_unsigned_commands_change_nothing(device, fleet, tmp_path):
    reg = Registry(tmp_path / "reg.sqlite")
    flow.provision(Session(device, timeout=5), fleet, reg, "env_sensor", "x")
    s = Session(device, timeout=5, signer=fleet.fleet_signer)   # fleet key may not REBOOT
    caps = s.hello()
    ring = messages.Keyring()
    ring.add(flow.check_certificate(caps.payload[C.K_CERT], fleet.fleet_public)[C.K_PUB],
             C.ROLE_DEVICE)
    s.device_keys = ring
    with pytest.raises(ProtocolError) as info:
        s.request(C.REBOOT, {})
    assert info.value.code == C.E_UNAUTHORIZED
    time.sleep(0.6)             # an accepted REBOOT resets 200 ms after its ACK
    assert device.boots == 2    # the refused REBOOT did not reboot
    s.signer = fleet.operator_signer
    assert s.request(C.REBOOT, {}).type == C.ACK
    deadline = time.monotonic() + 10
    while device.boots < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert device.boots == 3
    assert s.hello().payload[C.K_RESET_CAUSE] == "soft"


def test_prov_begin_retransmission_answers_the_same_key(device):
    """A host that missed PROV_KEY resends the same PROV_BEGIN: it must get the same key,
    or it would certify a key the device no longer holds."""
    import os
    s = Session(device, timeout=5)
    nonce = os.urandom(16)
    seq, body = s.build(C.PROV_BEGIN, {C.K_NONCE: nonce, C.K_FLEET: "f", C.K_KIND: "env_sensor"})
    first = s.exchange(seq, body, expect=C.PROV_KEY)
    again = s.exchange(seq, body, expect=C.PROV_KEY)
    assert again.payload[C.K_PUB] == first.payload[C.K_PUB]
    other = s.request(C.PROV_BEGIN, {C.K_NONCE: os.urandom(16), C.K_FLEET: "f",
                                     C.K_KIND: "env_sensor"}, expect=C.PROV_KEY)
    assert other.payload[C.K_PUB] != first.payload[C.K_PUB]   # a new session: a new key
