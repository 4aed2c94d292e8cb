"""Each app runs within its board's heap with at least 30% headroom: the emulator gives the
VM only 70% of the board's heap -- on the 64-bit VM plus the measured frozen-firmware
allowance (edgekit.emu.rom), on the board-accurate frozen 32-bit VM nothing more
(edgekit.emu.frozen_rom; docs/memory.md) -- and the app's whole workload must still run
without a reboot, a failed task or a refused answer. bench/bench_heap.py bisects the smallest share
each app needs (the figures are in docs/memory.md).

Every kind's app (firmware/kinds/<kind>/<kind>.py) is measured: one without a workload of
its own here runs the core services' workload until its author adds one.

The memory-lean paths the budget relies on (signing in place, frames written block by block)
are also checked here against the straightforward constructions: same bytes, or the saving
is a bug."""
import json
import random

import pytest

from edgekit import firmware_tree
from edgekit import catalog as C
from edgekit.hil.devices import provision
from edgekit.hil.targets import BoardSpec, EmulatedTarget
from edgekit.protocol import cose as host_cose
from edgekit.protocol.framing import encode_frame
from edgekit.testing import frozenvm, mp
from kinds_workloads import WORKLOADS as KIND_WORKLOADS

# The plain ESP32 and the Pico W are the boards the 30% target is about; the WROVER (PSRAM,
# megabytes of heap) runs every workload too, so its definition is known to work.
BOARDS = ("esp32", "rp2040", "esp32_wrover")
# Both VMs: the 64-bit PyPI one (heap + the measured allowance of the modules it loads) and
# the board-accurate one (32-bit, the firmware frozen as a board image carries it, the
# board's heap exactly: edgekit.emu.frozen_rom). On the plain ESP32 (no PSRAM) only the
# frozen image is a real product, so that pair is the one the 30% target is about.
ROMS = ("mpy", "frozen32")
# Where the board-accurate VM shows the 30% target is not met yet, the scale the case does
# run at, every time, and why: the test then holds that figure until the firmware is leaner.
# None now: the water ATM, frozen on the ESP32, needed 0.70 and failed 2 runs in 27 there on
# a tx_fetch page until the page stopped being decoded (docs/memory.md);
# `bench/bench_heap.py --repeat 30 water_atm esp32` counts its failures at 0.70.
FROZEN_SCALE = {}
# The same on the 64-bit VM, the approximation. None now: the air node on the plain ESP32
# ran out of memory in its PROV_COMMIT in 3 to 5 runs of 10 at 0.70 (loading its settings
# schema there) until provisioning loaded the schema at PROV_BEGIN (docs/memory.md).
MPY_SCALE = {}
# 0.7 = 30% headroom on the board's own figure (110 KB ESP32, 190 KB RP2040).
HEADROOM_SCALE = {"esp32": 0.7, "rp2040": 0.7, "esp32s3": 0.7, "esp32_wrover": 0.7}
T0 = 1767225600          # 2026-01-01T00:00:00Z


def apps():
    """Device kinds with an app (the module named for its kind, in the kind's folder beside
    its schema and helpers)."""
    return firmware_tree.kinds_with_app()


def water_meter_workload(target, dev):
    """A day with flows, alarms, fetches, commands: every path that allocates."""
    world, clock = target.world, target.clock
    dev.session.request(C.TIME_SYNC, {C.K_TIME: T0}, expect=C.TIME)
    for lpm, minutes in [(9, 15), (150, 8), (0.5, 240), (12, 30)]:
        world.set(flow_lpm=lpm)
        clock.advance(minutes * 60)
    world.set(flow_lpm=0, tamper=True)
    clock.advance(2 * 3600)
    assert dev.drain_telemetry()
    assert dev.fetch_events()
    dev.command("history", hours=24)
    dev.command("valve", open=False)
    dev.command("valve", open=True)
    dev.command("read")
    return dev.command("diag")


def env_sensor_workload(target, dev):
    """Default configuration: samples, PM duty cycles, report windows, hourly and rolling
    means over six hours, a calibration, an alarm, then fetches and every command."""
    world, clock = target.world, target.clock
    world.set(temp_c=21.0, rh=55.0, pm25=35.0, pm10=60.0, pm1=25.0, noise_dba=55.0)
    dev.session.request(C.TIME_SYNC, {C.K_TIME: T0}, expect=C.TIME)
    clock.advance(1800)
    dev.command("calibrate", temp_c=21.0, rh=55.0)
    for pm25, minutes in [(35.0, 90), (180.0, 120), (20.0, 150)]:
        world.set(pm25=pm25, pm10=1.6 * pm25, pm1=0.75 * pm25)
        clock.advance(minutes * 60)
    assert dev.drain_telemetry()
    dev.fetch_events()
    dev.command("read")
    dev.command("status")
    return dev.command("diag")


def core_workload(target, dev):
    """For an app that has no workload of its own yet: the core services around it (a new
    app's author replaces it with one that exercises the app's paths)."""
    dev.session.request(C.TIME_SYNC, {C.K_TIME: T0}, expect=C.TIME)
    target.clock.advance(6 * 3600)
    dev.drain_telemetry()
    dev.fetch_events()
    return dev.command("diag")


WORKLOADS = {"water_meter": water_meter_workload, "env_sensor": env_sensor_workload}
WORKLOADS.update(KIND_WORKLOADS)        # smart bin, water ATM


@pytest.mark.parametrize("kind", apps())
@pytest.mark.parametrize("board_name", BOARDS)
@pytest.mark.parametrize("rom", ROMS)
def test_app_runs_within_its_heap_with_headroom(edgekit_emulator, hil_fleet, board_name, kind,
                                                rom):
    scale = HEADROOM_SCALE[board_name]
    if rom == "frozen32":
        frozenvm.require()
        scale = FROZEN_SCALE.get((board_name, kind), scale)
    else:
        scale = MPY_SCALE.get((board_name, kind), scale)
    target = EmulatedTarget(edgekit_emulator, BoardSpec(f"emu:{board_name}:{kind}"),
                            heap_scale=scale, rom=rom)
    try:
        dev = provision(target, hil_fleet, kind)
        diag = WORKLOADS.get(kind, core_workload)(target, dev)
        assert diag["task_errors"] == 0, diag
        assert target.boots() == 2, "the board rebooted during the workload (out of memory?)"
        assert diag["heap_free"] > 0
        dev.close()
    finally:
        target.close()


LEAN_PATHS = r'''
import json, binascii, cbor, cose, envelope, ed25519, link, catalog as C
seed = binascii.unhexlify(%(seed)r)
pub = ed25519.public_key(seed)
out = []
def old_sign1(payload, protected):
    header = dict(protected)
    header[C.COSE_ALG] = C.ALG_EDDSA
    header[C.COSE_KID] = cose.kid_of(pub)
    pb = cbor.dumps(header)
    sig = ed25519.sign(seed, cbor.dumps(["Signature1", pb, b"", payload]))
    return cbor.dumps(cbor.Tag(C.TAG_COSE_SIGN1, [pb, {}, payload, sig]))
for n in (0, 23, 24, 255, 256, 3000):
    pl = bytes((i * 7 + 1) & 0xFF for i in range(n))
    a = cose.sign1(pl, seed, {5: 1}, pub)
    out.append([a == old_sign1(pl, {5: 1}), a == cose.sign1(pl, seed, {5: 1}),
                cose.verify1(a, pub) == pl, binascii.hexlify(a).decode()])
for n, scratch in ((0, 0), (20, 64), (900, 0), (900, 2000), (3000, 1040)):
    envelope._scratch = None
    if scratch:
        envelope.reserve(scratch)
    pl = {1: bytes(n), 2: "x" * (n // 3), -3: [1, 2.5, None]}
    a = envelope.signed(C.TELEMETRY, pl, seed, pub, 77, "dev-1")
    hdr = {C.HDR_TYPE: C.TELEMETRY, C.HDR_SEQ: 77, C.HDR_SENDER: "dev-1"}
    out.append([a == old_sign1(cbor.dumps(pl), hdr), binascii.hexlify(a).decode()])
wire = bytearray()
w = link.FrameWriter(wire.extend)
for h in json.loads(%(bodies)r):
    wire[:] = b""
    w.send(binascii.unhexlify(h))
    out.append(binascii.hexlify(wire).decode())
for line in out:
    print(json.dumps(line))
'''


def test_lean_paths_write_the_same_bytes_as_the_straightforward_ones():
    """Signing in place (cose.sign1, envelope.signed over a reused buffer) and the block-wise
    frame writer give the bytes of building every piece whole, and the host verifies them."""
    rng = random.Random(5)
    seed = bytes(rng.randrange(256) for _ in range(32))
    bodies = [b"x", b"\x00" * 600, b"\xff" * 254, b"\xff" * 253, b"\xff" * 254 + b"\x00",
              b"\x10\x03" * 300, bytes(range(256)) * 4]
    bodies += [bytes(rng.choice((0, 3, 16, 255, rng.randrange(256)))
                     for _ in range(rng.randrange(1, 1100))) for _ in range(40)]
    lines = [json.loads(x) for x in mp.run(LEAN_PATHS % {
        "seed": seed.hex(), "bodies": json.dumps([b.hex() for b in bodies])},
        heap="1M").splitlines() if x.strip()]
    signs, envelopes, frames = lines[:6], lines[6:11], lines[11:]
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    pub = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    for same_as_old, same_without_key, verifies, msg in signs:
        assert same_as_old and same_without_key and verifies
        assert host_cose.verify1(bytes.fromhex(msg), pub) is not None
    for same_as_old, body in envelopes:
        assert same_as_old
        assert host_cose.verify1(bytes.fromhex(body), pub) is not None
    assert frames == [encode_frame(b).hex() for b in bodies]


LOST_ANSWER = r'''
import json, agent, envelope, catalog as C

class Dev:
    # The Device surface the agent uses; error() fails while `broke` says memory is out.
    keyring = replay = None
    provisioned = True
    broke = 0
    def accept(self, msg):
        self.accepted = msg.seq
    def error(self, seq, code, text):
        if self.broke:
            self.broke -= 1
            raise MemoryError("no memory for the error answer either")
        return json.dumps([seq, code, text]).encode()
    def encode_body(self, t, p):
        raise MemoryError("no memory for the answer")

replayed = [False]
def open_body(body, keyring, last, max_len):
    if replayed[0]:
        raise envelope.ProtoError("replayed sequence number", C.E_REPLAYED, 9)
    return envelope.Message(C.COMMAND, 9, "op", {}, kid=b"k" * 8, role=C.ROLE_OPERATOR)
envelope.open_body = open_body

dev = Dev()
a = agent.Agent(dev, 1024)
ran = []
a.on(C.COMMAND, lambda m: ran.append(m.seq) or (C.ACK, {}))
dev.broke = 1
try:
    a.handle(b"request")
    out = ["handled"]
except MemoryError:
    out = ["escaped"]
replayed[0] = True
out.append([json.loads(x) for x in a.handle(b"request")])
out.append([json.loads(x) for x in a.handle(b"another request")])
out.append(ran)
print(json.dumps(out))
'''


def test_an_answer_lost_to_memory_is_not_reported_as_a_replay():
    """Out of memory for the answer and for the busy error too: the host's retry of the same
    bytes hears "busy" and that the request was accepted, not "replayed"."""
    escaped, retry, other, ran = mp.run_json(LOST_ANSWER)
    assert escaped == "escaped" and ran == [9]
    assert retry == [[9, C.E_BUSY, retry[0][2]]] and "may have taken effect" in retry[0][2]
    assert other == [[9, C.E_REPLAYED, "replayed sequence number"]]
