"""Power cuts (SIGKILL, then a cold boot on the same flash) at random instants of updates on
the real firmware behind a pipe: during the transfer, the install (staging and the switch)
and the first boot (trial and confirmation). After every cut the device must run a verified
image -- the one its boot record names, never a mix -- and report the matching update
result; finishing the update must then install it. One cut per phase in `make test`, 150 with
EDGEKIT_NIGHTLY=1."""
import os
import threading
import time


from edgekit import catalog as C
from edgekit.ota import bundle as bundle_mod
from edgekit.ota.powercuts import PHASES, Campaign, restamp
from edgekit.ota.testing import BootingPipeDevice
from edgekit.protocol import messages
from edgekit.protocol.session import Session
from edgekit.provision import flow
from edgekit.registry.db import Registry
from edgekit.testing.fleet import TEST_PASSPHRASE, HilFleet

PASS = TEST_PASSPHRASE
# EDGEKIT_OTA_CUTS=N runs N instead (a longer local run without the whole nightly).
CUTS = int(os.environ.get("EDGEKIT_OTA_CUTS") or
           (150 if os.environ.get("EDGEKIT_NIGHTLY") else 3))


def test_power_cuts_at_random_instants_of_updates(tmp_path):
    test_fleet = HilFleet(tmp_path)
    keys, fleet = test_fleet.keystore, test_fleet.fleet
    firmware = keys.signer("firmware", PASS)
    base = bundle_mod.build("esp32", "env_sensor", "1.1.0", seq=1, deadline=10)
    dev = BootingPipeDevice(tmp_path / "flash", heap="512K").open()
    try:
        row = flow.provision(Session(dev, timeout=5), fleet, Registry(tmp_path / "r.sqlite"),
                             "env_sensor", "north")
        ring = messages.Keyring()
        ring.add(bytes(row["public_key"]), C.ROLE_DEVICE)

        def connect():
            return Session(dev, signer=fleet.operator_signer, device_keys=ring, timeout=3,
                           next_seq=lambda: keys.next_seq(C.ROLE_OPERATOR))

        timers = []

        def cut_after(seconds):
            t = threading.Timer(seconds, dev.powercut)
            timers.append(t)
            t.start()

        def wait_cut():
            while timers:
                timers.pop().join()
            time.sleep(0.1)

        camp = Campaign(connect, cut_after, wait_cut, dev.flash_dir, bytes(row["public_key"]),
                        seed=int(os.environ.get("EDGEKIT_SEED", "6")))
        camp.calibrate(restamp(base, 2, "1.0.2", firmware))
        for i in range(CUTS):
            b = restamp(base, 3 + i, "1.1.%d" % (3 + i), firmware)
            camp.cycle(b, PHASES[i % len(PHASES)])
        assert camp.problems == []
        assert len(camp.outcomes) == CUTS
        # every phase was cut, and the cuts left both images at least once
        assert {phase for phase, _ in camp.outcomes} == set(PHASES)
        print("outcomes:", camp.outcomes)
    finally:
        dev.close()
