"""Copy devices from the provisioning registry (SQLite, a technician's laptop) into the fleet's
store (PostgreSQL): `edgekit fleet init-store`. Run again after provisioning more devices; it
adds the new ones and updates the rest.

Each device goes through the store's own upsert_device (its checks, and its rule that a new
public key starts the device's seq afresh). The replay counter is merged, never lowered: the
store keeps the higher of the two last accepted seqs, so a message the laptop already accepted
over the cable cannot be replayed to the fleet service, and one the service accepted cannot
be replayed by copying an older laptop registry over it.
"""
from edgekit.registry.db import FIELDS


def device_fields(row):
    """upsert_device's keyword arguments for a device row of any registry."""
    fields = {name: row[name] for name in FIELDS if name != "location" and name in row}
    for name in ("public_key", "certificate", "hwid"):
        if fields.get(name) is not None:
            fields[name] = bytes(fields[name])
    if row.get("lat") is not None and row.get("lon") is not None:
        fields["location"] = (row["lat"], row["lon"])
    return fields


def copy_devices(source, target):
    """Every device of `source` into `target` (both Registry-like). Returns
    {"added": n, "updated": n}."""
    counts = {"added": 0, "updated": 0}
    for row in source.list():
        had = target.get(row["device_id"])
        target.upsert_device(row["device_id"], **device_fields(row))
        counts["updated" if had else "added"] += 1
        if row.get("last_seq") is not None:
            with target._write() as db:
                # Only a counter that is lower (or unset, as after a new key) moves up.
                db.execute("UPDATE devices SET last_seq = ? WHERE device_id = ? AND public_key "
                           "= ? AND (last_seq IS NULL OR last_seq < ?)",
                           (row["last_seq"], row["device_id"], bytes(row["public_key"] or b""),
                            row["last_seq"]))
    return counts
