"""`fleet serve` runs the OTA campaigns left to it (`ota campaign start|resume --via fleet
--by-service`, SPEC 13.7): the same campaign.Runner as the CLI, reaching devices through the
broker, on a thread of the service, so a rollout needs no operator's terminal kept open and
devices asleep during one attempt are tried again later.

Several workers may share a broker (`--group`): a campaign is claimed in the registry with
a lease (campaign_db.claim), renewed before each device and stage; a worker that dies leaves
a lease that runs out, and another worker takes the campaign over and resumes it (finished
devices are skipped, a transfer goes on from what the device holds). A pause or cancel
(`ota campaign pause|cancel`) stops it before its next device.
"""
import os
import socket
import threading
import time

from edgekit.errors import EdgekitError
from edgekit.ota import campaign, campaign_fleet
from edgekit.ota.bundle import Bundle
from edgekit.ota.campaign_db import CampaignStore
from edgekit.ota.sign import trusted_firmware_keys
from edgekit.registry.db import Registry

LEASE_S = 120.0     # a worker renews before each device: longer than one device's push turn


class CampaignDriver:
    """Claims and runs campaigns left to the service, one at a time, until `stop` is set."""

    def __init__(self, registry_path, keystore, operator, broker, username=None,
                 password=None, poll_s=10.0, retry_s=60.0, timeout=12.0, patience_s=60.0,
                 parallel=4, log=None):
        self.registry_path = registry_path
        self.keystore = keystore
        self.operator = operator
        self.broker = broker
        self.username = username
        self.password = password
        self.poll_s = poll_s            # how often the registry is asked for work
        self.retry_s = retry_s          # a campaign with devices not reached waits this long
        self.timeout = timeout
        self.patience_s = patience_s    # a silent device is left for the next attempt after it
        self.parallel = parallel
        self.log = log or (lambda line: None)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.not_before = {}            # campaign id -> time.time() of its next attempt
        self._thread = None

    def start(self, stop):
        self._thread = threading.Thread(target=self._loop, args=(stop,), daemon=True,
                                        name="edgekit-campaigns")
        self._thread.start()
        return self

    def join(self, timeout=None):
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self, stop):
        while not stop.is_set():
            try:
                ran = self.turn(stop)
            except Exception as exc:    # noqa: BLE001 - the service must keep ingesting
                self.log(f"campaigns: {exc}")
                ran = False
            if not ran:
                stop.wait(self.poll_s)

    def turn(self, stop):
        """Claim one campaign that is due and run it; False when there was none."""
        now = time.time()
        # Only campaigns still waiting are kept: a service runs for months.
        self.not_before = {cid: t for cid, t in self.not_before.items() if t > now}
        waiting = list(self.not_before)
        with Registry(self.registry_path) as reg:
            cid = CampaignStore(reg).claim(self.owner, now, LEASE_S, exclude=waiting)
        if cid is None:
            return False
        try:
            self._run(cid, stop)
        finally:
            with Registry(self.registry_path) as reg:
                CampaignStore(reg).release(cid, self.owner)
        return True

    def _run(self, cid, stop):
        with Registry(self.registry_path) as reg:
            c = CampaignStore(reg).get(cid)
        try:
            bundle = Bundle.load(c["bundle"])
            bundle.verify(trusted_firmware_keys(self.keystore))
        except (EdgekitError, OSError) as exc:
            # Nothing can be pushed: halted with the reason, for the operator to see in
            # `ota campaign status` and resume once the file is back.
            with Registry(self.registry_path) as reg:
                CampaignStore(reg).set_state(cid, "halted", note=f"fleet serve cannot use the "
                                             f"bundle {c['bundle']}: {exc}",
                                             unless_stopped=True)
            self.log(f"campaign {cid}: halted: bundle {c['bundle']}: {exc}")
            return
        ports, connect, push = campaign_fleet.reach(
            self.registry_path, cid, self.keystore, self.operator, self.broker, self.username,
            self.password, self.timeout, self.patience_s)

        def keep_going():
            if stop.is_set():
                return False
            with Registry(self.registry_path) as reg:
                return CampaignStore(reg).renew(cid, self.owner, time.time() + LEASE_S)

        self.log(f"campaign {cid}: running (update {bundle.seq}, {bundle.version})")
        report = campaign.Runner(
            self.registry_path, cid, bundle, self.keystore, self.operator, ports,
            parallel=self.parallel, connect=connect, push=push, keep_going=keep_going,
            progress=lambda dev, step, detail="": self.log(
                f"campaign {cid}: {dev} {step} {detail}".rstrip())).run()
        counts = ", ".join(f"{n} {k}" for k, n in sorted(report["counts"].items()))
        self.log(f"campaign {cid}: {report['state']} at stage {report['stage']}: {counts}"
                 + (f"; {report['note']}" if report["note"] else ""))
        if report["state"] == "running":        # devices not reached: later, not at once
            self.not_before[cid] = time.time() + self.retry_s
