"""Water ATM (prepaid kiosk), hardware in the loop. On the emulator the world model is the
customer's card, the water, the tank and the probes; on a bench the rig's card emulator and
flow rig (tests needing what a rig cannot stage skip with the reason)."""
import os
import random

import pytest

from edgekit import catalog as C
from edgekit.atm import Replay, fetch_all, reconcile
from edgekit.errors import ProtocolError
from edgekit.protocol import cose
from edgekit.vouchers import mint, to_qr_text

pytestmark = pytest.mark.hil(kind="water_atm")

T0 = 1767225600
BANDS = [[20, 5000], [0, 9000]]         # lifeline block: 5 units/m3 up to 20 L a day
# Short sessions keep the emulator quick: 2 L at 12 L/min is 10 s of water.
LEAN = {"poll_ms": 1000, "preset_l": 2, "grant_ml": 500, "settle_ms": 1500}
CARDS = [0x0A000001, 0x0A000002, 0x0A000003]
NIGHTLY = os.environ.get("EDGEKIT_NIGHTLY") == "1"
CUTS = 1000 if NIGHTLY else 500      # the 500 in make test
# The cuts run as SHARDS tests of CUTS // SHARDS each, one seed each, so that xdist workers
# share them (as one test they were 140 s on one worker while the other idled).
SHARDS = 4


def hexuid(n):
    return n.to_bytes(4, "big").hex()


def kiosk(provisioned, **config):
    dev = provisioned(config=dict(LEAN, **config))
    dev.command("prices", bands=BANDS)
    for n in CARDS:
        dev.command("card", uid=hexuid(n), role="water")
    return dev


def tap(world, clock, card, seconds):
    world.set(card=card)
    clock.advance(seconds)
    world.set(card=0)
    clock.advance(2)


def last_tx(dev):
    """The newest ledger record."""
    last = dev.command("tx_fetch", count=1)["last"]
    return dev.command("tx_fetch", **{"from": last, "count": 1})["records"][0][1]


def balances(dev):
    out, start = {}, 0
    while True:
        page = dev.command("balances", **{"from": start})
        out.update({bytes(uid): bal for uid, _, bal in page["cards"]})
        if not page["more"]:
            return out
        start += len(page["cards"])


# At the headroom scale (30% of the board's heap withheld, test_heap_headroom.py): hundreds
# of boots, each replaying the ledger, in the heap the proof of headroom allows.
@pytest.mark.hil(kind="water_atm", options={"heap_scale": 0.75},
                bench="counts boots and browns out inside flash writes: needs the emulator")
@pytest.mark.parametrize("seed", range(7, 7 + SHARDS))
def test_power_cuts_during_dispensing_and_top_ups_keep_the_books(board, world, clock,
                                                                 provisioned, hil_fleet, seed):
    """Cuts at random instants (sim time) and brown-outs at the Nth flash write (inside a
    ledger append, a snapshot, a recovery): after every one the kiosk's balances equal the
    replay of its journal, no voucher counts twice, and the litres that left the kiosk lie
    within what the ledger accounts for."""
    dev = kiosk(provisioned)
    operator = hil_fleet.signer("operator")
    rng = random.Random(seed)
    cuts = CUTS // SHARDS
    replay = Replay()
    for n in CARDS:                 # enough for every dispense: no tap is refused
        dev.command("credit", uid=hexuid(n), amount=3000)
    serial = 0
    issued = set()
    for i in range(cuts):
        card = rng.choice(CARDS)
        if rng.random() < 0.3:                  # a top-up: scan a voucher, tap the card
            serial += 1
            issued.add(serial)
            v = mint(operator, dev.id, serial, rng.randint(20, 80), issued=T0)
            world.set(scan=to_qr_text(v))
            writes = 1                          # the TOPUP append
        else:
            writes = 5                          # OPEN, grants, CLOSE of a 2 L dispense
        boots = board.boots()
        brownout = rng.random() < 0.5
        if brownout:
            board.faults.brownout(rng.randint(1, writes))   # inside the Nth flash write
        else:
            board.powercut(within=12.0)         # a random instant of the next 12 s
        tap(world, clock, card, 14)
        while brownout and board.boots() == boots:
            tap(world, clock, card, 14)         # not fired yet: never inside a host command
        if i % 20 == 19 or i == cuts - 1:
            clock.advance(12)                   # a dispense begun at a reboot ends first
            dev.reconnect()
            for seq, rec in fetch_all(dev):
                replay.apply(seq, rec)
            assert balances(dev) == replay.balances, f"after {i + 1} cuts"
            assert len(replay.vouchers) == len(set(replay.vouchers))
            assert set(replay.vouchers) <= issued
            truth = world.snapshot()["litres"]
            books = reconcile(replay, truth)
            # the meter counts whole pulses (10 mL): a dispense may read up to 10 mL short
            assert books["ledger_low_l"] <= truth + 1e-6, books
            assert truth <= books["ledger_high_l"] + 0.01 * replay.dispenses, books
    assert board.boots() >= cuts
    assert replay.interrupted > cuts // 10     # many cuts did land inside a dispense
    assert replay.dispenses > cuts // 2 and replay.vouchers
    tot = dev.command("reconcile")
    assert tot["mismatches"] == 0 and tot["lost"] == 0 and not tot["open"]
    assert tot["delivered_ml"] == replay.delivered_ml


@pytest.mark.hil(sim_s=14)  # a wait it needs: skips early on a bench
def test_a_voucher_is_redeemed_once(board, world, clock, provisioned, hil_fleet):
    dev = kiosk(provisioned)
    v = mint(hil_fleet.signer("operator"), dev.id, 1, 250, issued=T0)
    world.set(scan=to_qr_text(v))
    tap(world, clock, CARDS[0], 14)             # credited, then 2 L dispensed (10 units)
    assert dev.command("balance", uid=hexuid(CARDS[0]))["balance"] == 250 - 10
    # the same QR code again, at the kiosk and over the link: refused, nothing changes
    world.set(scan=to_qr_text(v))
    tap(world, clock, CARDS[1], 14)
    assert dev.command("balance", uid=hexuid(CARDS[1]))["balance"] == 0
    with pytest.raises(ProtocolError) as info:
        dev.command("redeem", uid=hexuid(CARDS[1]), voucher=v)
    assert info.value.code == C.E_REPLAYED
    log = [e[2] for e in dev.command("service_log", count=10)]
    assert any("already redeemed" in line for line in log), log
    # ...and after a reboot the kiosk still knows (the window is rebuilt from the ledger)
    board.reset()
    clock.advance(2)
    dev.reconnect()
    with pytest.raises(ProtocolError) as info:
        dev.command("redeem", uid=hexuid(CARDS[1]), voucher=to_qr_text(v))
    assert info.value.code == C.E_REPLAYED
    assert dev.command("balance", uid=hexuid(CARDS[1]))["balance"] == 0


def test_forged_vouchers_are_refused(board, world, clock, provisioned, hil_fleet):
    dev = kiosk(provisioned)
    dev.session.request(C.TIME_SYNC, {C.K_TIME: T0}, expect=C.TIME)
    op = hil_fleet.signer("operator")
    uid = hexuid(CARDS[0])
    good = mint(op, dev.id, 5, 100, issued=T0 - 10)
    altered = bytearray(good)
    altered[altered.index(bytes([0x18, 0x64]))] ^= 0x01     # amount 100 -> 101... in place
    cases = [
        (mint(cose.SeedSigner(os.urandom(32)), dev.id, 6, 100, issued=T0), C.E_UNKNOWN_KEY),
        (mint(hil_fleet.signer("firmware"), dev.id, 7, 100, issued=T0), C.E_UNAUTHORIZED),
        (bytes(altered), C.E_BAD_SIGNATURE),
        (mint(op, "atm-000000000000", 8, 100, issued=T0), C.E_WRONG_TARGET),
        (mint(op, dev.id, 9, 100, issued=T0 - 900, expires=T0 - 60), C.E_EXPIRED),
        (mint(op, dev.id, 10, 100, issued=T0, card=bytes(4)), C.E_WRONG_TARGET),
    ]
    for v, code in cases:
        with pytest.raises(ProtocolError) as info:
            dev.command("redeem", uid=uid, voucher=v)
        assert info.value.code == code, (code, str(info.value))
        world.set(scan=to_qr_text(v))           # the same at the scanner
        tap(world, clock, CARDS[0], 3)
    assert dev.command("balance", uid=uid)["balance"] == 0
    assert dev.command("redeem", uid=uid, voucher=good)["balance"] == 100
    assert [rec[0] for _, rec in fetch_all(dev, ack=False)].count(1) == 1     # one TOPUP


@pytest.mark.hil(sim_s=40)  # a wait it needs: skips early on a bench
def test_over_run_is_charged_and_no_flow_refunds(board, world, clock, provisioned):
    dev = kiosk(provisioned, preset_l=5)
    uid = hexuid(CARDS[0])
    dev.command("credit", uid=uid, amount=100)
    world.set(valve_lag_s=1.0)                  # a slow solenoid: 200 mL after it is told
    tap(world, clock, CARDS[0], 40)
    rec = last_tx(dev)
    ml, over, charged = rec[4], rec[5], rec[6]
    assert 5000 < ml and over == ml - 5000 and 150 <= over <= 320, rec
    assert charged == ml * 5000 // 1000000
    assert abs(world.snapshot()["litres"] * 1000 - ml) <= 10
    # The pipe runs dry: the valve opens, nothing comes; after no_flow_s it closes, the
    # customer pays only for what came, and the kiosk goes out of service.
    before = dev.command("balance", uid=uid)["balance"]
    world.set(blocked=True)
    tap(world, clock, CARDS[0], 15)
    rec = last_tx(dev)
    assert rec[0] == 4 and rec[8] == "no_flow" and rec[4] == 0 and rec[6] == 0
    assert dev.command("balance", uid=uid)["balance"] == before
    st = dev.command("status")
    assert not st["in_service"] and "no_flow" in [a[0] for a in st["alarms"]]
    world.set(blocked=False)
    tap(world, clock, CARDS[0], 10)             # refused while out of service
    assert world.snapshot()["litres"] * 1000 < ml + 20
    dev.command("card", uid="5e5e5e5e", role="service")
    tap(world, clock, 0x5E5E5E5E, 40)           # a technician: clears it, flushes (free)
    assert dev.command("status")["in_service"]
    rec = last_tx(dev)
    assert rec[0] == 4 and rec[4] >= 5000 and rec[6] == 0


@pytest.mark.hil(sim_s=21)  # a wait it needs: skips early on a bench
def test_pay_as_you_flow_stops_when_the_card_leaves(board, world, clock, provisioned):
    dev = kiosk(provisioned, mode="payf")
    uid = hexuid(CARDS[1])
    dev.command("credit", uid=uid, amount=100)
    tap(world, clock, CARDS[1], 21)             # ~20 s of water at 12 L/min: about 4 L
    litres = world.snapshot()["litres"]
    assert 3.6 <= litres <= 4.6
    assert world.snapshot()["outputs"]["valve"] is False
    bal = dev.command("balance", uid=uid)["balance"]
    ml = last_tx(dev)[4]
    assert bal == 100 - ml * 5000 // 1000000
    # credit runs out mid-flow: the valve closes at what the balance pays for
    dev.command("credit", uid=uid, amount=-bal + 1)     # 1 unit: 200 mL at 5000/m3
    tap(world, clock, CARDS[1], 20)
    rec = last_tx(dev)
    assert rec[8] == "done" and 150 <= rec[4] <= 320 and rec[6] <= 1


def test_plant_alarms_and_warnings(board, world, clock, provisioned):
    dev = kiosk(provisioned, plant_s=60)
    uid = hexuid(CARDS[2])
    dev.command("credit", uid=uid, amount=100)
    world.set(tank_l=150, tds_ppm=400, ntu=2.0)     # low tank, TDS and turbidity warnings
    clock.advance(120)
    st = dev.command("status")
    names = {a[0] for a in st["alarms"]}
    assert {"tank_low", "tds_warn", "ntu_warn"} <= names and st["in_service"]
    tap(world, clock, CARDS[2], 14)                 # warnings keep the water flowing
    assert world.snapshot()["litres"] > 1.9
    world.set(ntu=8.0)                              # murky: an alarm, out of service
    clock.advance(120)
    st = dev.command("status")
    assert "ntu_high" in {a[0] for a in st["alarms"]} and not st["in_service"]
    assert world.snapshot()["outputs"]["led_alarm"] is True
    before = world.snapshot()["litres"]
    tap(world, clock, CARDS[2], 14)
    assert world.snapshot()["litres"] == before
    world.set(ntu=0.4, tank_l=20)                   # clear again, but the tank is empty
    clock.advance(120)
    st = dev.command("status")
    assert "tank_empty" in {a[0] for a in st["alarms"]} and not st["in_service"]
    world.set(tank_l=900)
    clock.advance(120)
    assert dev.command("status")["in_service"]
