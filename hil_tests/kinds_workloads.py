"""Heap workloads of the smart bin and the water ATM: every path of the app that allocates,
run at the headroom scale by hil_tests/test_kinds_headroom.py and bisected by
bench/bench_apps.py (the same shape as the workloads in test_heap_headroom.py, which can
register these: WORKLOADS.update(kinds_workloads.WORKLOADS))."""
from edgekit import catalog as C
from edgekit.vouchers import mint, to_qr_text

T0 = 1767225600


def smart_bin_workload(target, dev):
    """Default configuration: a filling day with compactions, a jam and its service, fire,
    tilt and the lid, a collection; then fetches and every command."""
    world, clock = target.world, target.clock
    dev.session.request(C.TIME_SYNC, {C.K_TIME: T0}, expect=C.TIME)
    world.set(fill_lph=40, echo_outliers=0.2)
    clock.advance(5 * 3600)
    world.set(jam=True)
    clock.advance(2 * 3600)
    world.set(jam=False)
    dev.command("clear_jam")
    world.set(temp_c=90.0, lid=True, tilt=True)
    clock.advance(900)
    world.set(temp_c=20.0, lid=False, tilt=False, collect=True, fill_lph=10)
    clock.advance(3 * 3600)
    assert dev.drain_telemetry()
    dev.fetch_events()
    dev.command("read")
    return dev.command("diag")


def water_atm_workload(target, dev):
    """Prices, cards, a voucher scanned and one sent, preset and pay-as-you-flow dispenses,
    a no-flow fault, plant alarms; then the ledger fetched and acknowledged and every
    read command."""
    world, clock = target.world, target.clock
    dev.session.request(C.TIME_SYNC, {C.K_TIME: T0}, expect=C.TIME)
    dev.command("prices", bands=[[20, 5000], [0, 9000]])
    for n in range(1, 6):
        dev.command("card", uid="0a0000%02x" % n, role="water")
    dev.command("card", uid="5e5e5e5e", role="service")
    op = dev.session.signer             # the test fleet's operator key signs vouchers too
    world.set(scan=to_qr_text(mint(op, dev.id, 1, 500, issued=T0)))
    dev.command("redeem", uid="0a000002", voucher=mint(op, dev.id, 2, 300, issued=T0))
    dev.command("credit", uid="0a000003", amount=200)
    for n in (1, 2, 3):
        world.set(card=0x0A000000 + n)
        clock.advance(120)                      # a 20 L jerrycan at 12 L/min
        world.set(card=0)
        clock.advance(5)
    world.set(blocked=True, card=0x0A000001)
    clock.advance(20)
    world.set(blocked=False, card=0, tds_ppm=700, ntu=3.0)
    clock.advance(600)
    world.set(card=0x5E5E5E5E)
    clock.advance(40)
    world.set(card=0, tds_ppm=150, ntu=0.3)
    clock.advance(600)
    page = dev.command("tx_fetch", count=64)
    while page["more"]:
        page = dev.command("tx_fetch", count=64, **{"from": page["records"][-1][0] + 1})
    dev.command("tx_ack", upto=page["last"])
    dev.command("balances")
    dev.command("reconcile")
    dev.command("service_log", count=20)
    dev.command("status")
    assert dev.drain_telemetry() is not None
    dev.fetch_events()
    return dev.command("diag")


WORKLOADS = {"smart_bin": smart_bin_workload, "water_atm": water_atm_workload}
