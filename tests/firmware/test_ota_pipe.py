"""OTA end to end on the real firmware in micropython behind a pipe (boot.py, then the
runtime, as a board boots): install + trial + confirmation, delta, resume, every refusal
before anything is written, tampered payloads, and rollbacks (failed health checks, a crashing
image, an operator abort)."""
import hashlib
import time

import pytest

from edgekit import catalog as C
from edgekit.errors import ProtocolError
from edgekit.keys.store import KeyStore
from edgekit.testing.fleet import TEST_PASSPHRASE, keystore_fixture
from edgekit.ota import bundle as bundle_mod
from edgekit.ota import manifest as man
from edgekit.ota.bundle import Bundle
from edgekit.ota.push import Pusher, PushError
from edgekit.ota.sign import sign_with_keystore
from edgekit.ota.testing import BootingPipeDevice, active_image, load_store_record
from edgekit.protocol import cbor
from edgekit.protocol.session import Session
from edgekit.provision import flow
from edgekit.registry.db import Registry

PASS = TEST_PASSPHRASE
KIND = "env_sensor"       # its sampling copes with the sensors a pipe lacks: trials pass
HEAP = "512K"             # the pipe VM holds all bytecode in its heap (the emulator accounts)


keys = keystore_fixture()


@pytest.fixture(scope="module")
def bundles(keys):
    def make(version, seq, **kw):
        kw.setdefault("kind", KIND)
        kw.setdefault("deadline", 10)
        return sign_with_keystore(bundle_mod.build("esp32", version=version, seq=seq, **kw),
                                  keys, PASS)
    return {"v11": make("1.1.0", 10), "v12": make("1.2.0", 20), "make": make}


class Rig:
    def __init__(self, tmp_path, keys, kind=KIND):
        self.flash = tmp_path / "flash"
        self.dev = BootingPipeDevice(self.flash, heap=HEAP).open()
        self.keys = keys
        fleet = flow.Fleet(keys, keys.signer("fleet", PASS), keys.signer("operator", PASS))
        self.session = Session(self.dev, timeout=5)
        self.row = flow.provision(self.session, fleet, Registry(tmp_path / "reg.sqlite"),
                                  kind, "north")
        self.session.signer = fleet.operator_signer
        self.session.next_seq = lambda: keys.next_seq("operator")
        self.public_key = bytes(self.row["public_key"])

    def pusher(self, b, **kw):
        return Pusher(self.session, b, self.public_key, **kw)

    def caps(self):
        return self.session.hello().payload

    def slots_snapshot(self):
        root = self.flash / "slots"
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file()} if root.exists() else {}

    def powercut(self):
        self.dev.powercut()
        time.sleep(0.2)


@pytest.fixture
def rig(tmp_path, keys):
    r = Rig(tmp_path, keys)
    yield r
    r.dev.close()


def expect_refusal(rig, b, code):
    before = rig.slots_snapshot()
    with pytest.raises(ProtocolError) as info:
        rig.pusher(b).offer()
    assert info.value.code == code, info.value
    assert rig.slots_snapshot() == before, "a refused offer wrote to the slots"
    result = rig.pusher(b).fetch_result()
    assert result["status"] == "rejected" and result["code"] == code
    return str(info.value)


def test_install_trial_confirm_and_signed_result(rig, bundles):
    b = bundles["v11"]
    assert rig.pusher(b).fetch_result()["status"] == "none"
    events = []
    p = rig.pusher(b, progress=events.append)
    result = p.run()
    assert result["status"] == "installed" and result["version"] == "1.1.0"
    assert result["running"] == "1.1.0" and result["seq"] == 10
    assert p.stats["sent_bytes"] - p.stats["resent_bytes"] == p.total
    assert {e["event"] for e in events} >= {"offered", "done", "installed", "result"}
    caps = rig.caps()
    assert caps[C.K_FW] == "1.1.0" and caps[C.K_STATE] == "provisioned"
    slot, files = active_image(rig.flash)
    assert slot == "a"
    assert files == {f["name"]: f["digest"].hex() for f in b.files}
    boot = load_store_record(rig.flash, "boot")
    assert boot["floor"] == 10 and not boot["trial"]


def test_delta_sends_only_the_changed_file(rig, bundles):
    rig.pusher(bundles["v11"]).run()
    b = bundles["v12"]
    p = rig.pusher(b)
    status = p.offer()
    changed = [f for f in b.files if f["digest"] != dict(
        (g["name"], g["digest"]) for g in bundles["v11"].files)[f["name"]]]
    assert [f["name"] for f in changed] == ["build_info.mpy"]
    assert sorted(status[C.K_FILES]) == sorted(f["index"] for f in b.files
                                               if f not in changed)
    p.transfer()
    assert p.stats["sent_bytes"] - p.stats["resent_bytes"] == changed[0]["xsize"]
    p.install()
    assert p.wait_result()["status"] == "installed"
    assert active_image(rig.flash) == ("b", {f["name"]: f["digest"].hex() for f in b.files})
    assert rig.caps()[C.K_FW] == "1.2.0"


def test_transfer_interrupted_at_half_resumes_without_resending(rig, bundles):
    b = bundles["v11"]
    first = rig.pusher(b)
    first.offer()
    first.transfer(stop_after=b and len(b.stream()) // 2)
    held = first.held
    got = sum(e - s for s, e in held)
    assert len(b.stream()) // 2 <= got < len(b.stream())
    rig.session.decoder = type(rig.session.decoder)(C.MAX_FRAME_LIMIT)   # a new link
    second = rig.pusher(b)
    status = second.offer()
    assert sum(e - s for s, e in status[C.K_RANGES]) >= got
    second.transfer()
    # the first transmissions are exactly what was missing (a timeout may add a resend)
    assert second.stats["sent_bytes"] - second.stats["resent_bytes"] == len(b.stream()) - \
        sum(e - s for s, e in status[C.K_RANGES])
    second.install()
    assert second.wait_result()["status"] == "installed"


def test_power_cut_mid_transfer_resumes_from_persisted_ranges(rig, bundles):
    b = bundles["v11"]
    p = rig.pusher(b)
    p.offer()
    p.transfer(stop_after=int(len(b.stream()) * 0.6))
    time.sleep(1.5)                 # idle link: the device persists what it holds
    rig.powercut()
    q = rig.pusher(b)
    status = q.offer()
    kept = sum(e - s for s, e in status[C.K_RANGES])
    assert kept >= int(len(b.stream()) * 0.6) - 4096
    q.transfer()
    assert q.stats["sent_bytes"] - q.stats["resent_bytes"] == len(b.stream()) - kept
    q.install()
    assert q.wait_result()["status"] == "installed"


def _crafted(keys, signer=None, **changes):
    """A signed manifest with chosen fields (no payload needed: it is refused first)."""
    fields = dict(seq=30, version="9.0.0", board="esp32", kind=KIND, runtime="1.29.0",
                  files=[{"name": "x.mpy", "size": 4,
                          "digest": hashlib.sha256(b"abcd").digest()}], issued=0, deadline=10)
    fields.update(changes)
    payload = man.encode(man.build(**fields))
    signer = signer or keys.signer("firmware", PASS)
    return Bundle(payload, [b"abcd"] * len(fields["files"]), man.sign(payload, signer, 1))


class _Signer:
    def __init__(self, inner):
        self.inner, self.public_key_bytes, self.role = inner, inner.public_key_bytes, "firmware"

    def sign(self, data):
        return self.inner.sign(data)


def test_every_refusal_happens_before_anything_is_written(rig, bundles, keys, tmp_path):
    rig.pusher(bundles["v12"]).run()            # installed: floor 20
    text = expect_refusal(rig, _crafted(keys, board="rp2040"), C.E_WRONG_TARGET)
    assert "rp2040" in text
    expect_refusal(rig, _crafted(keys, kind="water_meter"), C.E_WRONG_TARGET)
    assert "needs MicroPython 9.0.0" in expect_refusal(rig, _crafted(keys, runtime="9.0.0"),
                                                       C.E_WRONG_TARGET)
    assert "not above the installed 20" in expect_refusal(rig, bundles["v11"], C.E_ROLLBACK)
    expect_refusal(rig, bundles["v12"], C.E_ROLLBACK)            # replaying the installed one
    huge = [{"name": "huge.mpy", "size": 1 << 50, "digest": bytes(32)}]
    assert "bytes of flash" in expect_refusal(rig, _crafted(keys, files=huge), C.E_NO_SPACE)
    # wrong keys: another fleet's firmware key, then this fleet's operator key
    other = KeyStore(tmp_path / "other")
    other.init(PASS)
    expect_refusal(rig, _crafted(keys, signer=_Signer(other.signer("firmware", PASS))),
                   C.E_UNKNOWN_KEY)
    expect_refusal(rig, _crafted(keys, signer=_Signer(keys.signer("operator", PASS))),
                   C.E_UNAUTHORIZED)
    # a manifest altered after signing
    good = _crafted(keys)
    tag = cbor.loads(good.signed)
    protected, unprot, payload, sig = tag.value
    m = cbor.loads(payload)
    m[C.K_OTA_SEQ] = 99
    forged = Bundle(cbor.dumps(m), good.payloads,
                    cbor.dumps(cbor.Tag(18, [protected, unprot, cbor.dumps(m), sig])))
    expect_refusal(rig, forged, C.E_BAD_SIGNATURE)
    assert rig.caps()[C.K_FW] == "1.2.0"


def test_tampered_payload_is_discarded_and_never_installed(rig, bundles):
    b = bundles["v11"]
    payloads = list(b.payloads)
    victim = next(f for f in b.files if f["encoding"] is None)
    i = victim["index"]
    payloads[i] = bytes([payloads[i][0] ^ 0x5A]) + payloads[i][1:]
    bad = Bundle(b.manifest_payload, payloads, b.signed)
    p = rig.pusher(bad)
    p.offer()
    with pytest.raises(PushError, match="rejected a file 3 times.*%s" % victim["name"]):
        p.transfer()
    assert not (rig.flash / "slots" / "a" / victim["name"]).exists()
    with pytest.raises(ProtocolError) as info:
        p.install()
    assert info.value.code == C.E_INVALID_STATE
    assert rig.caps()[C.K_FW] == "1.0.0"
    # the genuine bundle then resumes: only the discarded file moves again
    good = rig.pusher(b)
    status = good.offer()
    good.transfer()
    assert good.stats["sent_bytes"] - good.stats["resent_bytes"] == len(b.stream()) - \
        sum(e - s for s, e in status[C.K_RANGES])
    good.install()
    assert good.wait_result()["status"] == "installed"


def test_failed_health_checks_roll_back_and_leave_the_floor(tmp_path, keys, bundles):
    # The water meter's sampling needs a pulse counter the pipe board does not have: its
    # critical task fails, so the trial must not confirm.
    rig = Rig(tmp_path, keys, kind="water_meter")
    try:
        b = bundles["make"]("1.1.0", 10, kind="water_meter")
        later = bundles["make"]("1.2.0", 20, kind="water_meter")   # built before the trial
        p = rig.pusher(b)
        p.offer()
        p.transfer()
        p.install()
        seen_trial = False
        for _ in range(20):
            try:
                seen_trial |= rig.caps()[C.K_STATE] == "trial"
                break
            except Exception:
                time.sleep(0.2)
        with pytest.raises(ProtocolError) as info:       # no new offer during a trial
            rig.pusher(later).offer()
        assert info.value.code == C.E_INVALID_STATE
        result = p.wait_result(timeout=40)
        assert result["status"] == "rolled_back" and "sample" in result["reason"]
        assert seen_trial and result["running"] == "1.0.0"
        assert active_image(rig.flash)[0] is None
        assert load_store_record(rig.flash, "boot")["floor"] == 0
        assert rig.pusher(b).offer()[C.K_STATUS] in ("receiving", "staged")   # not rollback
    finally:
        rig.dev.close()


def test_an_image_that_crashes_at_boot_is_rolled_back(rig, bundles, tmp_path):
    broken = tmp_path / "services.py"
    broken.write_text("raise RuntimeError('this image is broken')\n")
    sources = [s for s in bundle_mod.default_sources(KIND) if s.name != "services.py"]
    b = bundles["make"]("1.3.0", 40, sources=sources + [broken])
    p = rig.pusher(b)
    p.offer()
    p.transfer()
    p.install()
    deadline = time.monotonic() + 10
    while not rig.dev.exit_codes[-1:] == [1] and time.monotonic() < deadline:
        time.sleep(0.1)               # the image dies on import: a board would sit in the
    rig.powercut()                    # REPL until its watchdog resets it
    result = p.wait_result(timeout=20)
    assert result["status"] == "rolled_back" and "did not confirm" in result["reason"]
    assert rig.caps()[C.K_FW] == "1.0.0"


def test_abort_discards_staging_and_the_next_offer_starts_over(rig, bundles):
    p = rig.pusher(bundles["v11"])
    p.offer()
    p.transfer(stop_after=len(p.stream) // 3)
    assert rig.session.request(C.OTA_ABORT, {}, expect=C.ACK).payload[C.K_STATUS] == "aborted"
    assert not any(k.startswith("a/") for k in rig.slots_snapshot())
    assert load_store_record(rig.flash, "tx") is None
    q = rig.pusher(bundles["v11"])
    assert sum(e - s for s, e in q.offer()[C.K_RANGES]) == 0
    assert q.run()["status"] == "installed"
