"""`edgekit devices telemetry ID [--since ISO|unix] [--csv|--json]`: the stored data read back.

What `edgekit monitor` stored (registry/telemetry.py): one row per SenML record, and the
device's journaled events. A readable table by default, CSV of the records for a
spreadsheet, JSON of both for scripts.
"""
import csv
import io
import json
import math
import sys
from datetime import datetime, timezone

from edgekit.errors import EdgekitError
from edgekit.registry import export, location, platform_export
from edgekit.registry import telemetry as store
from edgekit.registry.backends import open_registry

CSV_COLUMNS = ("time", "name", "value", "value_text", "unit", "device_id", "journal_seq",
               "idx", "clock", "received_at")


def parse_since(text):
    """ISO 8601 (a date, or a date and time; without a zone it is UTC) or unix seconds."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is not None:
        if not math.isfinite(value) or value < 0:
            raise EdgekitError(f"--since {text!r}: unix seconds must be a number from 0 on")
        return value
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise EdgekitError(f"--since {text!r}: give ISO 8601 UTC (2026-12-03 or "
                           "2026-12-03T14:00:00Z) or unix seconds (1796300000)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def _table(rows, headers):
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def _print_text(device_id, records, events):
    from edgekit.operate.render import value_text
    if not records and not events:
        print(f"no telemetry stored for {device_id}: `edgekit monitor PORT --ack` stores it "
              "as the device sends it")
        return
    if records:
        print(_table([(r["time"] or "-", r["name"], value_text(r),
                       f"{r['journal_seq']}.{r['idx']}",
                       "" if r["clock"] == "device" else r["clock"]) for r in records],
                     ("TIME (UTC)", "NAME", "VALUE", "PACK.REC", "TIME FROM")))
    print(f"{len(records)} record(s) from {len({r['journal_seq'] for r in records})} pack(s)")
    if events:
        print()
        print(_table([(e["time"] or f"{e['received_at']} (received)", e["name"],
                       "set" if e["active"] else "cleared", str(e["journal_seq"]))
                      for e in events], ("TIME (UTC)", "EVENT", "STATE", "SEQ")))
        print(f"{len(events)} event(s)")


def _published_location(device):
    """(lat, lon) as the public register shows it (coarsened per privacy), or None."""
    if device.get("lat") is None or device.get("lon") is None:
        return None
    level = device.get("privacy") or export.PRIVACY_DEFAULT.get(device["kind"], "block")
    lat, lon, _ = location.coarsen(device["lat"], device["lon"], level)
    return lat, lon


def cmd_telemetry(args):
    if sum(bool(x) for x in (args.json, args.csv, args.senml, args.ngsi_ld)) > 1:
        raise EdgekitError("give one of --csv, --json, --senml, --ngsi-ld")
    since = parse_since(args.since) if args.since is not None else None
    with open_registry(args.registry) as reg:
        device = reg.get(args.device_id)
        if device is None:
            raise EdgekitError(f"no device {args.device_id!r} in {reg.path}: see `edgekit "
                               "devices list`")
        records = store.telemetry(reg, args.device_id, since=since)
        events = store.device_events(reg, args.device_id, since=since)
        # An alarm set before --since may still be active: its state needs every event.
        all_events = store.device_events(reg, args.device_id) if args.ngsi_ld else events
    if args.senml:
        sys.stdout.write(json.dumps(platform_export.senml_json(args.device_id, records),
                                    indent=1) + "\n")
    elif args.ngsi_ld:
        sys.stdout.write(json.dumps(platform_export.ngsi_ld(
            device, records, _published_location(device), all_events), indent=1) + "\n")
    elif args.json:
        sys.stdout.write(json.dumps({"device": args.device_id, "telemetry": records,
                                     "events": events}, indent=2, sort_keys=True) + "\n")
    elif args.csv:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for r in records:
            writer.writerow(["" if r[c] is None else r[c] for c in CSV_COLUMNS])
        sys.stdout.write(out.getvalue())
    else:
        _print_text(args.device_id, records, events)
    return 0


def register(sub, common):
    p = sub.add_parser("telemetry", parents=[common], help="a device's stored telemetry",
                       description="The telemetry records and events `edgekit monitor` stored "
                                   "for one device (each record once, whatever was re-sent), "
                                   "oldest first: a table, --csv of the records, or --json "
                                   "of both. Times are UTC.")
    p.add_argument("device_id", metavar="ID")
    p.add_argument("--since", metavar="ISO|UNIX",
                   help="only data from this time on (2026-12-03, 2026-12-03T14:00:00Z, or "
                        "unix seconds)")
    p.add_argument("--csv", action="store_true", help="the records as CSV")
    p.add_argument("--senml", action="store_true",
                   help="the records as SenML JSON (RFC 8428) for a data platform")
    p.add_argument("--ngsi-ld", action="store_true",
                   help="the latest values as FIWARE NGSI-LD entities of the smart data "
                        "models in docs/data-mapping.md, at the register's location")
    p.set_defaults(func=cmd_telemetry)
