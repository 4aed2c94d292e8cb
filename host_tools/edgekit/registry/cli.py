"""`edgekit devices ...`: list, show, annotate and publish the devices in the registry."""
import argparse
import json
import sys
from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit.registry import export, location, telemetry_cli
from edgekit.registry.db import PRIVACY_LEVELS, STATUSES, Registry

LIST_COLUMNS = ("device_id", "kind", "status", "site", "fw_version", "key_epoch", "last_seen")


def _jsonable(device: dict) -> dict:
    return {k: (v.hex() if isinstance(v, bytes) else v) for k, v in device.items()}


def _print_json(obj):
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def _open(args) -> Registry:
    return Registry(args.registry)


def _keys_epoch(args):
    """The key store's current epoch, or None where this host has no key directory."""
    from edgekit.keys.store import KeyStore
    store = KeyStore(args.keys)
    try:
        return store.epoch if store.exists() else None
    except EdgekitError:
        return None     # a damaged key directory is for `keys list` to report, not this


def _mark_behind(devices, current):
    """`behind`: the device last reported an epoch below the key store's (None: unknown);
    the text column shows such an epoch as `1<2`."""
    for d in devices:
        epoch = d.get("key_epoch")
        d["behind"] = None if epoch is None or current is None else epoch < current
    return devices


def cmd_list(args):
    with _open(args) as reg:
        devices = reg.list(kind=args.kind, site=args.site, status=args.status,
                           owner=args.owner)
    current = _keys_epoch(args)
    _mark_behind(devices, current)
    if args.json:
        _print_json([_jsonable(d) for d in devices])
        return 0
    for d in devices:
        if d["behind"]:
            d["key_epoch"] = f"{d['key_epoch']}<{current}"
    if not devices:
        print("no devices match" if any((args.kind, args.site, args.status, args.owner))
              else "the registry is empty: devices are added when they are provisioned")
        return 0
    widths = {c: max(len(c), *(len(str(d[c] or "")) for d in devices)) for c in LIST_COLUMNS}
    print("  ".join(c.upper().ljust(widths[c]) for c in LIST_COLUMNS).rstrip())
    for d in devices:
        print("  ".join(str(d[c] or "-").ljust(widths[c]) for c in LIST_COLUMNS).rstrip())
    behind = sum(1 for d in devices if d["behind"])
    print(f"{len(devices)} device(s)" + (f", {behind} behind key epoch {current}: run "
                                         "`edgekit keys deliver PORT...`" if behind else ""))


def _get(reg, device_id):
    device = reg.get(device_id)
    if device is None:
        raise EdgekitError(f"no device {device_id!r} in {reg.path}: see `edgekit devices list`")
    return device


def cmd_show(args):
    with _open(args) as reg:
        device = _get(reg, args.device_id)
        events = reg.events(args.device_id, limit=args.events)
    if args.json:
        out = _jsonable(device)
        out["events"] = events
        _print_json(out)
        return 0
    for key, value in device.items():
        if isinstance(value, bytes):
            value = value.hex() if len(value) <= 32 else f"<{len(value)} bytes>"
        print(f"{key:15} {'-' if value is None else value}")
    print(f"last {len(events)} event(s):" if events else "no events")
    for e in events:
        print(f"  {e['time']}  {e['type']:16} {json.dumps(e['detail'], sort_keys=True)}")


def _parse_location(text):
    try:
        lat, lon = (float(part) for part in text.split(","))
    except ValueError:
        raise EdgekitError(f"--location {text!r}: write LAT,LON in decimal degrees, "
                           "e.g. 52.3731,4.8922") from None
    return (lat, lon)


def cmd_set(args):
    fields = {name: getattr(args, name) for name in
              ("kind", "site", "owner", "purpose", "status", "retention_days", "privacy")
              if getattr(args, name) is not None}
    if args.location is not None:
        fields["location"] = _parse_location(args.location)
    if not fields:
        raise EdgekitError("nothing to change: give at least one of --kind, --site, "
                           "--location, --owner, --purpose, --status, --retention-days, "
                           "--privacy")
    with _open(args) as reg:
        if "location" in fields and not args.force_location:
            others = [(d["lat"], d["lon"]) for d in reg.list()
                      if d["device_id"] != args.device_id]
            suspect = location.swap_suspect(*fields["location"], others)
            if suspect:
                raise EdgekitError(f"{args.device_id}: {suspect}")
        device = reg.upsert_device(args.device_id, **fields)
        detail = {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}
        reg.record_event(args.device_id, "registry_update", detail)
    if args.json:
        _print_json(_jsonable(device))
    else:
        print(f"{args.device_id}: updated " + ", ".join(sorted(fields)))


def cmd_export(args):
    fmt = "json" if args.json else args.format
    try:
        retention = export.parse_retention(args.retention)
    except ValueError as exc:
        raise EdgekitError(str(exc)) from None
    with _open(args) as reg:
        devices = [d for d in reg.list()
                   if args.all or d["status"] not in ("factory", "retired")]
    try:
        entries = export.register_entries(devices, retention)
    except ValueError as exc:
        raise EdgekitError(str(exc)) from None
    written = len(entries)
    if fmt == "csv":
        text = export.to_csv(entries)
    elif fmt == "geojson":
        text, unlocated = export.to_geojson(entries)
        written = len(entries) - len(unlocated)
        if unlocated:
            print(f"edgekit: {len(unlocated)} device(s) without a location left out of the "
                  f"map: {', '.join(unlocated[:10])}{' ...' if len(unlocated) > 10 else ''}; "
                  "set it with `edgekit devices set ID --location LAT,LON`", file=sys.stderr)
    else:
        text = export.to_json(entries)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {written} register entries ({fmt}) to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def register(subparsers):
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--registry", metavar="FILE",
                        help="registry database (default $EDGEKIT_HOME/registry.sqlite)")
    common.add_argument("--json", action="store_true", help="machine-readable output")

    devices = subparsers.add_parser(
        "devices", help="the device registry and public sensor register",
        description="Devices known to this fleet (SQLite). See docs/registry.md.")
    sub = devices.add_subparsers(dest="devices_command", metavar="ACTION", required=True)

    p = sub.add_parser("list", parents=[common], help="list devices",
                       description="Devices in the registry, one line each (id, kind, status, "
                                   "site, firmware, key epoch, last seen); the filters "
                                   "combine. A key epoch below the key store's shows as "
                                   "1<2 (JSON: behind).")
    p.add_argument("--kind", choices=export.KINDS, help="only this device kind")
    p.add_argument("--site", help="only devices provisioned for this site")
    p.add_argument("--status", choices=STATUSES, help="only devices in this state")
    p.add_argument("--owner", help="only devices of this owner")
    p.add_argument("--keys", metavar="DIR", help="key directory whose epoch devices are "
                   "compared with (default $EDGEKIT_HOME/keys)")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", parents=[common], help="one device and its recent events",
                       description="Everything the registry holds on one device (kind, "
                                   "board, public key and certificate, site, location, owner, "
                                   "firmware, status, last seen) and its most recent events: "
                                   "provisioning, alarms, commands, OTA results.")
    p.add_argument("device_id", metavar="ID")
    p.add_argument("--events", type=int, default=20, metavar="N",
                   help="how many recent events to show (default 20)")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("set", parents=[common], help="record where a device is and why",
                       description="Create or update a device's register fields; the change "
                                   "is logged as a registry_update event.")
    p.add_argument("device_id", metavar="ID")
    p.add_argument("--kind", choices=export.KINDS, help="needed when the device is new")
    p.add_argument("--site")
    p.add_argument("--location", metavar="LAT,LON",
                   help="WGS 84 decimal degrees, latitude first (a negative latitude: "
                        "--location=-33.92,18.42)")
    p.add_argument("--owner")
    p.add_argument("--purpose")
    p.add_argument("--status", choices=STATUSES)
    p.add_argument("--retention-days", type=int, metavar="DAYS",
                   help="keep this device's data DAYS days (overrides the kind default)")
    p.add_argument("--privacy", choices=PRIVACY_LEVELS,
                   help="how precisely the public register shows the location: exact, block "
                        "(100 m grid cell) or district (1 km); default per kind (water "
                        "meters: block, on private premises)")
    p.add_argument("--force-location", action="store_true",
                   help="accept a location far from the rest of the fleet whose swapped "
                        "coordinates would be near it (normally refused as LON,LAT)")
    p.set_defaults(func=cmd_set)

    p = sub.add_parser("export", parents=[common], help="publish the public sensor register",
                       description="For each device in service: kind, location, owner, "
                                   "purpose, data collected and retention.")
    p.add_argument("--format", choices=("csv", "geojson", "json"), default="csv")
    p.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--retention", action="append", metavar="KIND=DAYS",
                   help="retention for a device kind (repeatable); default per kind in "
                        "docs/registry.md")
    p.add_argument("--all", action="store_true",
                   help="include factory-state and retired devices")
    p.set_defaults(func=cmd_export)

    telemetry_cli.register(sub, common)     # devices telemetry ID: what monitor stored
