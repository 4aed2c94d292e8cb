"""Staged rollouts over registry devices (`edgekit ota campaign`).

A campaign updates the devices of one board and kind in stages -- cumulative cohorts given
as counts or percentages, e.g. `1,10%,50%,100%` (a canary, then widening) -- and after each
stage compares its failures (rolled back, rejected, failed) with a threshold: above it, the
campaign halts and reports, and no further device is touched. Every step is recorded in the
registry (campaign_db), so `resume` continues an interrupted campaign: finished devices are
skipped, interrupted pushes resume where their transfer stopped.
"""
import math
import re
import time

from edgekit import catalog as C
from edgekit.errors import EdgekitError, LinkError, ProtocolError
from edgekit.ota.campaign_db import FAILURES, FINAL, STOPPED, CampaignStore
from edgekit.ota.connect import Link, check_target
from edgekit.ota.push import Pusher
from edgekit.registry.db import Registry
from edgekit.transport.port_runner import check_parallel, each

_STAGE = re.compile(r"^\s*(\d+)(%?)\s*$")
# Refusals that say the update cannot apply to this device (not a broken link).
REJECTIONS = (C.E_WRONG_TARGET, C.E_ROLLBACK, C.E_BAD_SIGNATURE, C.E_UNKNOWN_KEY,
              C.E_UNAUTHORIZED, C.E_NO_SPACE, C.E_BAD_REQUEST, C.E_INVALID_STATE)


def parse_stages(text):
    """'1,10%,100%' -> [[1, False], [10, True], [100, True]]; cumulative, growing."""
    stages = []
    for part in str(text).split(","):
        m = _STAGE.match(part)
        if not m or int(m.group(1)) < 1 or (m.group(2) and int(m.group(1)) > 100):
            raise EdgekitError(f"stage {part.strip()!r}: give a device count (5) or a "
                               "percentage of the fleet (25%), separated by commas")
        stages.append([int(m.group(1)), bool(m.group(2))])
    return stages


def parse_rate(text):
    m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$", str(text))
    if not m or float(m.group(1)) > 100:
        raise EdgekitError(f"failure threshold {text!r}: give a percentage such as 5%")
    return float(m.group(1)) / 100.0


def stage_sizes(stages, total):
    """Cumulative device counts per stage for a fleet of `total`."""
    out, prev = [], 0
    for n, pct in stages:
        size = math.ceil(total * n / 100.0) if pct else n
        size = max(prev, min(total, size))
        out.append(size)
        prev = size
    return out


def select_devices(registry, bundle, site=None, only=None):
    m = bundle.manifest
    rows = registry.list(kind=m[C.K_KIND], site=site, status="provisioned")
    rows = [r for r in rows if r.get("board") in (None, m[C.K_BOARD])]
    if only:
        rows = [r for r in rows if r["device_id"] in set(only)]
    return [r["device_id"] for r in rows]


def discover(ports, keystore, operator, parallel=8):
    """{device_id: port} of the devices answering on `ports` (certified by this fleet)."""
    def probe(port):
        try:
            link = Link(port, keystore, operator, timeout=5.0)
        except (EdgekitError, OSError):
            return None
        link.close()
        return link.device_id, port
    return dict(r for r in each(ports, probe, parallel) if r)


class Runner:
    """Runs (or resumes) campaign `cid` over the devices reachable in `ports`."""

    def __init__(self, registry_path, cid, bundle, keystore, operator, ports, parallel=4,
                 progress=None, connect=None, push=None, keep_going=None):
        self.registry_path = registry_path
        self.cid = cid
        self.bundle = bundle
        self.keystore = keystore
        self.operator = operator
        self.ports = dict(ports)
        self.parallel = check_parallel(parallel)
        self.progress = progress or (lambda device_id, step, detail="": None)
        # How a device is reached and updated: its port and Pusher.run by default; through
        # the broker (campaign_fleet.py) a FleetLink and a push that waits out outages.
        self.connect = connect or (lambda device_id, port: Link(port, keystore, operator))
        self.push = push or (lambda pusher: pusher.run())
        # Asked before each device and each stage (the fleet service renews its lease there
        # and stops on its own shutdown); a pause or cancel in the registry is checked too.
        self.keep_going = keep_going or (lambda: True)

    def _stopped(self, store):
        return store.state(self.cid) in STOPPED or not self.keep_going()

    def run(self):
        started = time.monotonic()
        with Registry(self.registry_path) as reg:
            store = CampaignStore(reg)
            c = store.get(self.cid)
            if c["seq"] != self.bundle.seq:
                raise EdgekitError(f"campaign {self.cid} installs update {c['seq']}, not the "
                                   f"bundle given ({self.bundle.seq})")
            if c["state"] == "done":
                return self.report(store, time.monotonic() - started)
            if c["state"] == "cancelled":
                why = c["note"] or "no reason given"
                raise EdgekitError(f"campaign {self.cid} was cancelled ({why}): start a new "
                                   "campaign to update these devices")
            devices = store.devices(self.cid)
            sizes = stage_sizes(c["stages"], len(devices))
            store.set_state(self.cid, "running")    # a resume: a paused campaign runs again
            for index, size in enumerate(sizes):
                if self._stopped(store):
                    return self.report(store, time.monotonic() - started)
                members = [d["device_id"] for d in devices[:size]]
                store.assign(self.cid, members, index + 1)
                rows = {d["device_id"]: d for d in store.devices(self.cid)}
                todo = [dev for dev in members if rows[dev]["status"] not in FINAL]
                each(todo, self._update, self.parallel)
                if self._stopped(store):
                    return self.report(store, time.monotonic() - started)
                rows = {d["device_id"]: d for d in store.devices(self.cid)}
                failed = [dev for dev in members if rows[dev]["status"] in FAILURES]
                rate = len(failed) / len(members) if members else 0.0
                if rate > c["max_failure_rate"]:
                    note = (f"halted after stage {index + 1}: {len(failed)} of {len(members)} "
                            f"devices failed ({rate:.0%} > {c['max_failure_rate']:.0%}): "
                            + ", ".join(f"{dev} {rows[dev]['status']}" for dev in failed))
                    store.set_state(self.cid, "halted", stage=index, note=note,
                                    unless_stopped=True)
                    return self.report(store, time.monotonic() - started)
                store.set_state(self.cid, "running", stage=index + 1, unless_stopped=True)
            waiting = [d["device_id"] for d in store.devices(self.cid)
                       if d["status"] not in FINAL]
            store.set_state(self.cid, "running" if waiting else "done",
                            note=(f"{len(waiting)} device(s) not reached yet: resume the "
                                  "campaign when they are online") if waiting else "",
                            unless_stopped=True)
            return self.report(store, time.monotonic() - started)

    def report(self, store, seconds):
        c = store.get(self.cid)
        devices = store.devices(self.cid)
        counts = {}
        for d in devices:
            counts[d["status"]] = counts.get(d["status"], 0) + 1
        return {"campaign": self.cid, "state": c["state"], "stage": c["stage"],
                "driver": c["driver"],
                "stages": stage_sizes(c["stages"], len(devices)), "note": c["note"],
                "version": c["version"], "seq": c["seq"], "counts": counts,
                "seconds": round(seconds, 1),
                "devices": [{k: d[k] for k in ("device_id", "stage", "status", "attempts",
                                                "result")} for d in devices]}

    # -- one device ---------------------------------------------------------------------
    def _update(self, device_id):
        with Registry(self.registry_path) as reg:   # one connection per thread
            store = CampaignStore(reg)
            if self._stopped(store):        # paused or cancelled meanwhile: not started
                return
            port = self.ports.get(device_id)
            if port is None:
                store.mark(self.cid, device_id, "unreachable",
                           {"reason": "no port answered as this device"})
                self.progress(device_id, "unreachable")
                return
            store.mark(self.cid, device_id, "running", {"port": port})
            self.progress(device_id, "updating", port)
            status, result = self._push(device_id, port)
            store.mark(self.cid, device_id, status, result)
            self.progress(device_id, status, result.get("reason", ""))
            if reg.get(device_id) is not None and status != "unreachable":
                if result.get("clock"):
                    reg.record_clock(device_id, result["clock"]["drift_s"])
                reg.record_event(device_id, "ota_" + status,
                                 {"campaign": self.cid, "seq": self.bundle.seq,
                                  "reason": result.get("reason")})
                if status == "installed":
                    reg.upsert_device(device_id, fw_version=self.bundle.version)

    def _push(self, device_id, port):
        try:
            link = self.connect(device_id, port)
        except (LinkError, OSError) as exc:
            return "unreachable", {"reason": str(exc)}
        except EdgekitError as exc:
            return "failed", {"reason": str(exc)}
        try:
            if link.device_id != device_id:
                return "failed", {"reason": f"{port} now answers as {link.device_id}"}
            check_target(self.bundle, link.caps)
            pusher = Pusher(link.session, self.bundle, link.public_key)
            result = self.push(pusher)
            result["sent_bytes"] = pusher.stats["sent_bytes"]
            result["clock"] = link.clock        # the drift measured (and synced) on connect
            return result["status"], result
        except ProtocolError as exc:
            status = "rejected" if exc.code in REJECTIONS else "failed"
            return status, {"reason": str(exc), "code": exc.code}
        except (LinkError, OSError) as exc:
            return "unreachable", {"reason": str(exc)}
        except EdgekitError as exc:
            return "failed", {"reason": str(exc)}
        finally:
            link.close()


def create(registry_path, cid, bundle_path, bundle, stages, max_failure_rate, site=None,
           only=None):
    with Registry(registry_path) as reg:
        devices = select_devices(reg, bundle, site, only)
        if not devices:
            m = bundle.manifest
            raise EdgekitError(f"no provisioned {m[C.K_KIND]} devices on {m[C.K_BOARD]} in "
                               f"the registry{' at ' + site if site else ''}: nothing to update")
        return CampaignStore(reg).create(cid, bundle_path, bundle, stages, max_failure_rate,
                                         devices)
