"""Topic names of SPEC 13: one pair per device, so a broker ACL can pin each device to its own.

    ek/<device id>/up      device -> service: signed bodies (telemetry, events, answers)
    ek/<device id>/down    service -> device: operator-signed bodies (acks, fetches, commands)
"""
from edgekit.registry.db import check_device_id

PREFIX = "ek"
UP_FILTER = f"{PREFIX}/+/up"       # what a fleet service subscribes to
QOS = 1                             # SPEC 13: at-least-once; duplicates are replays
SERVICE_USER = "edgekit-fleet"      # the fleet service's broker user (SPEC 13.4)


def up(device_id: str) -> str:
    return f"{PREFIX}/{device_id}/up"


def down(device_id: str) -> str:
    return f"{PREFIX}/{device_id}/down"


def shared(filter_: str, group: str) -> str:
    """An MQTT 5 / broker-extension shared subscription ($share/GROUP/FILTER)."""
    return f"$share/{group}/{filter_}"


def device_of_up(topic: str):
    """The device id an up-topic names, or None when the topic is not `ek/<valid id>/up`."""
    parts = topic.split("/") if isinstance(topic, str) else ()
    if len(parts) != 3 or parts[0] != PREFIX or parts[2] != "up":
        return None
    try:
        check_device_id(parts[1])
    except Exception:
        return None
    # MQTT wildcards in a name would let one id's ACL entry match another's topics.
    return None if "+" in parts[1] or "#" in parts[1] else parts[1]
