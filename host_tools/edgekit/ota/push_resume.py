"""Pusher.run for a link that comes and goes (the network path, SPEC 13.7): a broker outage,
a device that lost its Wi-Fi or its power mid-transfer is waited for, then offered the same
update again, and the transfer goes on from what the device holds (its OTA_STATUS ranges),
not from zero. On a cable the same LinkError ends the push (`edgekit ota push` again
resumes); through a broker the offer waits in the device's persistent session, so waiting
here is cheap."""
import time

from edgekit import catalog as C
from edgekit.errors import LinkError, ProtocolError
from edgekit.ota.push import held_bytes

_MAX_RESTARTS = 10      # a device that keeps losing its transfer is broken, not unlucky


def stage(pusher, patience_s, pause_s=1.0):
    """Offer and transfer until everything is held, outliving silences of up to
    `patience_s` seconds each."""
    silent_since, progress_at, restarts = None, -1, 0
    while True:
        try:
            pusher.offer()
            pusher.transfer()
            return
        except ProtocolError as exc:
            # A chunk reached a device that has no transfer open: it rebooted (a power cut)
            # since the offer. Offer again; it resumes from the ranges it persisted.
            if exc.code != C.E_INVALID_STATE or restarts >= _MAX_RESTARTS:
                raise
            restarts += 1
            pusher.stats["restarts"] = restarts
            pusher.progress({"event": "waiting", "detail": f"the device restarted: {exc}",
                             "held": held_bytes(pusher.held), "total": pusher.total})
        except LinkError as exc:
            now = time.monotonic()
            held = held_bytes(pusher.held)
            if held > progress_at:          # it moved on since the last silence: a new one
                silent_since, progress_at = now, held
            if now - silent_since > patience_s:
                # A LinkError still: unreachable (a campaign retries it later), not failed.
                raise LinkError(f"the device stayed silent for {patience_s:.0f} s ({held} of "
                                f"{pusher.total} bytes held): {exc}; push again later (it "
                                "resumes)") from None
            pusher.stats["waits"] = pusher.stats.get("waits", 0) + 1
            pusher.progress({"event": "waiting", "detail": str(exc), "held": held,
                             "total": pusher.total})
            time.sleep(pause_s)


def run_resuming(pusher, install=True, patience_s=600.0):
    """Offer, transfer (resuming across outages), install, and the device-signed result."""
    stage(pusher, patience_s)
    if not install:
        return {"status": "staged"}
    try:
        pusher.install()
    except ProtocolError as exc:
        if exc.code not in (C.E_INVALID_STATE, C.E_DIGEST_MISMATCH):
            raise
        stage(pusher, patience_s)        # a file failed its last check: resend just that
        pusher.install()
    return pusher.wait_result()
