"""`edgekit ota campaign ... --via fleet`: a campaign's devices reached by id through the MQTT
broker instead of on ports (SPEC 13.7). Every device of the campaign is worth trying: one that
does not answer within the patience is `unreachable` (not a failure: a later `resume` takes
it), as a device no port answered for is on the cable path."""
from edgekit.fleet.device_link import FleetLink
from edgekit.ota.campaign_db import CampaignStore
from edgekit.ota.push_resume import run_resuming
from edgekit.registry.db import Registry

VIA = "fleet"       # the "port" every device of a campaign over the broker is reached on


def reach(registry_path, cid, keystore, operator, broker, username, password,
          timeout, patience_s):
    """(ports, connect, push) for campaign.Runner over the broker (a BrokerAddress)."""
    with Registry(registry_path) as reg:
        ids = [d["device_id"] for d in CampaignStore(reg).devices(cid)]
    ports = {device_id: f"{VIA}:{device_id}" for device_id in ids}

    def connect(device_id, _port):
        with Registry(registry_path) as reg:        # one connection per worker thread
            return FleetLink(reg, device_id, keystore, operator, broker,
                             username=username, password=password, min_timeout=timeout)

    def push(pusher):
        pusher.stall_s = min(pusher.stall_s, 2 * timeout)
        return run_resuming(pusher, patience_s=patience_s)

    return ports, connect, push
