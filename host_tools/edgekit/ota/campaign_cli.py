"""`edgekit ota campaign start|resume|status|list`: staged rollouts over the registry."""
import argparse
import json
import sys
import time
from pathlib import Path

from edgekit import catalog as C
from edgekit.errors import EdgekitError
from edgekit.fleet.cli_options import add_transfer_waits, add_via_fleet
from edgekit.transport.port_runner import add_parallel_option


def _print_json(obj):
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def _keys(args):
    from edgekit.keys.cli import read_passphrase
    from edgekit.keys.store import KeyStore
    keystore = KeyStore(args.keys)
    keystore.current(C.ROLE_OPERATOR)
    return keystore, keystore.signer(C.ROLE_OPERATOR, read_passphrase(args))


def _bundle(path, keystore):
    from edgekit.ota.bundle import Bundle
    from edgekit.ota.sign import trusted_firmware_keys
    b = Bundle.load(path)
    b.verify(trusted_firmware_keys(keystore))
    return b


def _reach_by_broker(args, cid, keystore, operator):
    import os

    from edgekit.fleet.service import parse_url
    from edgekit.ota import campaign_fleet
    if args.port:
        raise EdgekitError("--via fleet reaches the devices through the broker: drop --port")
    return campaign_fleet.reach(args.registry, cid, keystore, operator,
                                parse_url(args.broker, args.ca),
                                args.username, os.environ.get("EDGEKIT_MQTT_PASSWORD"),
                                args.timeout, args.patience)


def _run(args, cid, bundle, keystore, operator):
    from edgekit.ota import campaign
    from edgekit.ui import Progress
    if args.via == "fleet":
        ports, connect, push = _reach_by_broker(args, cid, keystore, operator)
        live = None if args.json else Progress(sorted(ports), quiet=False)
        report = campaign.Runner(args.registry, cid, bundle, keystore, operator, ports,
                                 parallel=args.parallel, connect=connect, push=push,
                                 progress=(live.update if live else None)).run()
        if live:
            live.finish()
        _show(report, args.json)
        return 0 if report["state"] == "done" else 1
    if not args.port:
        raise EdgekitError("give the devices' ports: --port PORT (repeat; serial ports, "
                           "socket://HOST:PORT or emu:ID); each is asked which device it is")
    from edgekit.emu.port_names import warn_deadlines
    warn_deadlines(args.port)
    ports = campaign.discover(args.port, keystore, operator, args.parallel)
    if not args.json:
        print(f"{len(ports)} of {len(args.port)} ports answered as devices of this fleet",
              file=sys.stderr)
    live = None if args.json else Progress(sorted(ports), quiet=False)
    runner = campaign.Runner(args.registry, cid, bundle, keystore, operator, ports,
                             parallel=args.parallel,
                             progress=(live.update if live else None))
    report = runner.run()
    if live:
        live.finish()
    _show(report, args.json)
    return 0 if report["state"] == "done" else 1


def _show(report, as_json):
    if as_json:
        _print_json(report)
        return
    counts = ", ".join(f"{n} {k}" for k, n in sorted(report["counts"].items()))
    by = " (run by fleet serve)" if report.get("driver") == "service" else ""
    print(f"campaign {report['campaign']}{by}: {report['state']} at stage {report['stage']} of "
          f"{len(report['stages'])} (cohorts {report['stages']}); update {report['seq']} "
          f"({report['version']}): {counts}; {report['seconds']} s")
    if report["note"]:
        print(f"  {report['note']}")
    for d in report["devices"]:
        reason = d["result"].get("reason") or ""
        print(f"  {d['device_id']:24} stage {d['stage'] or '-':<3} {d['status']:12} "
              f"{reason[:70]}")


def _check_by_service(args):
    if args.by_service and args.via != "fleet":
        raise EdgekitError("--by-service leaves the campaign to `edgekit fleet serve`, which "
                           "reaches devices through the broker: add --via fleet")


def _hand_to_service(args, cid):
    """Leave campaign `cid` to `fleet serve` and say so: nothing is pushed from here."""
    from edgekit.ota.campaign_db import CampaignStore
    from edgekit.registry.db import Registry
    with Registry(args.registry) as reg:
        c = CampaignStore(reg).hand_to_service(cid)
    if args.json:
        _print_json({"campaign": cid, "state": c["state"], "driver": c["driver"]})
    else:
        print(f"campaign {cid}: {c['state']}, left to `edgekit fleet serve` (it runs it, and "
              f"retries devices that were asleep); follow it with `edgekit ota campaign "
              f"status {cid}`")
    return 0


def cmd_start(args):
    from edgekit.ota import campaign
    _check_by_service(args)
    keystore, operator = _keys(args)
    bundle = _bundle(args.bundle, keystore)
    stages = campaign.parse_stages(args.stages)
    rate = campaign.parse_rate(args.max_failures)
    cid = args.name or f"ota-{bundle.version}-{time.strftime('%Y%m%d-%H%M%S')}"
    campaign.create(args.registry, cid, str(Path(args.bundle).resolve()), bundle, stages,
                    rate, site=args.site, only=args.device)
    if args.by_service:
        return _hand_to_service(args, cid)
    return _run(args, cid, bundle, keystore, operator)


def cmd_resume(args):
    from edgekit.ota.campaign_db import CampaignStore
    from edgekit.registry.db import Registry
    _check_by_service(args)
    keystore, operator = _keys(args)
    with Registry(args.registry) as reg:
        store = CampaignStore(reg)
        c = store.get(args.name)
        if c["state"] == "cancelled":
            raise EdgekitError(f"campaign {args.name} was cancelled: start a new campaign")
        if c["driver"] == "service" and not args.by_service:
            raise EdgekitError(f"campaign {args.name} is run by `edgekit fleet serve`: resume "
                               "it with --by-service (or pause it first and resume it from "
                               "here with --via fleet, not both at once)"
                               if c["state"] != "paused" else
                               f"campaign {args.name} was left to `edgekit fleet serve`: "
                               "resume it with --by-service")
        if args.retry_failed:
            n = store.retry_failed(args.name)
            if not args.json:
                print(f"{n} failed device(s) queued again", file=sys.stderr)
    if args.by_service:
        return _hand_to_service(args, args.name)
    return _run(args, args.name, _bundle(args.bundle or c["bundle"], keystore), keystore,
                operator)


def cmd_stop(args):
    """`pause` and `cancel`: no device is started from now on (one mid-push finishes it)."""
    from edgekit.ota.campaign_db import CampaignStore
    from edgekit.registry.db import Registry
    state = "paused" if args.campaign_command == "pause" else "cancelled"
    with Registry(args.registry) as reg:
        c = CampaignStore(reg).stop(args.name, state, args.reason or f"{state} by the operator")
    if args.json:
        _print_json({"campaign": args.name, "state": c["state"], "note": c["note"]})
    else:
        again = (f"`edgekit ota campaign resume {args.name}`" if state == "paused"
                 else "a new campaign")
        print(f"campaign {args.name}: {state}; no device is started from now on (a push under "
              f"way finishes). To go on: {again}")
    return 0


def cmd_status(args):
    from edgekit.ota.campaign import Runner
    from edgekit.ota.campaign_db import CampaignStore
    from edgekit.registry.db import Registry
    with Registry(args.registry) as reg:
        store = CampaignStore(reg)
        if not args.name:
            rows = store.list()
            if args.json:
                _print_json(rows)
            elif not rows:
                print("no campaigns yet: `edgekit ota campaign start BUNDLE ...`")
            for r in rows if not args.json else ():
                by = "  run by fleet serve" if r["driver"] == "service" else ""
                print(f"{r['id']:32} {r['state']:9} stage {r['stage']}  {r['kind']} on "
                      f"{r['board']}  {r['version']} (update {r['seq']})  {r['created']}{by}")
            return 0
        report = Runner(args.registry, args.name, None, None, None, {}).report(store, 0.0)
    _show(report, args.json)
    return 0


def register(sub, keys, out, secret):
    ports = argparse.ArgumentParser(add_help=False)
    ports.add_argument("--port", action="append", metavar="PORT",
                       help="a port a device of the campaign answers on (repeat)")
    add_parallel_option(ports, 4, "devices updated")
    net = ports.add_argument_group("through the broker (--via fleet, docs/fleet.md)")
    add_via_fleet(net, "fleet: reach the campaign's devices by id through the MQTT broker "
                       "instead of --port (SPEC 13.7)")
    add_transfer_waits(net, 120.0, "how long a silent device is waited for before it is left "
                                   "unreachable for a later resume")
    net.add_argument("--by-service", action="store_true",
                     help="with --via fleet: leave the campaign to `edgekit fleet serve` "
                          "(which runs it, retries sleeping devices and survives this "
                          "terminal) instead of running it here")
    reg = argparse.ArgumentParser(add_help=False)
    reg.add_argument("--registry", metavar="FILE", help="registry (default $EDGEKIT_HOME)")

    camp = sub.add_parser("campaign", help="staged rollout to a fleet",
                          description="Update the registry's devices in stages; halt and "
                                      "report when failures pass a threshold; resume any "
                                      "time. See docs/ota.md.")
    csub = camp.add_subparsers(dest="campaign_command", metavar="ACTION", required=True)

    p = csub.add_parser("start", parents=[keys, out, secret, ports, reg],
                        help="plan and run a campaign",
                        description="Select the provisioned devices of the bundle's board "
                                    "and kind, then update them stage by stage.")
    p.add_argument("bundle", metavar="BUNDLE")
    p.add_argument("--stages", default="1,10%,50%,100%",
                   help="cumulative cohorts: counts or percentages (default 1,10%%,50%%,100%%)")
    p.add_argument("--max-failures", default="0%", metavar="PCT",
                   help="halt when more than this share of a stage's devices fail (default 0%%)")
    p.add_argument("--name", help="campaign name (default ota-VERSION-TIME)")
    p.add_argument("--site", help="only devices of this site")
    p.add_argument("--device", action="append", metavar="ID", help="only these devices")
    p.set_defaults(func=cmd_start)

    p = csub.add_parser("resume", parents=[keys, out, secret, ports, reg],
                        help="continue an interrupted or halted campaign",
                        description="Devices already updated are skipped; interrupted "
                                    "pushes resume their transfer.")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--bundle", help="bundle file (default: the path recorded at start)")
    p.add_argument("--retry-failed", action="store_true",
                   help="update again the devices that failed (after fixing the cause)")
    p.set_defaults(func=cmd_resume)

    p = csub.add_parser("status", parents=[out, reg], help="show a campaign (or list them)",
                        description="One campaign's stage and every device's state in it; without "
                                    "NAME, every campaign in the registry.")
    p.add_argument("name", metavar="NAME", nargs="?", help="campaign name (default: list all)")
    p.set_defaults(func=cmd_status)

    for action, what in (("pause", "until `resume`"), ("cancel", "for good")):
        p = csub.add_parser(action, parents=[out, reg], help=f"stop a campaign {what}",
                            description=f"No further device of the campaign is updated "
                                        f"{what}; a push under way finishes (its transfer is "
                                        "resumable, its trial the device's own). Works on a "
                                        "campaign run here or by `fleet serve`.")
        p.add_argument("name", metavar="NAME")
        p.add_argument("--reason", help="a note kept with the campaign")
        p.set_defaults(func=cmd_stop)
