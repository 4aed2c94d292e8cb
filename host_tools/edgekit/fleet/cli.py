"""`edgekit fleet ...`: the fleet on the network (docs/fleet.md, SPEC 13).

    edgekit fleet broker [--host 127.0.0.1] [--port 1883] [--tls-cert F --tls-key F]
    edgekit fleet serve [--broker mqtt[s]://127.0.0.1:1883] [--ca F] [--webhook URL]
                        [--registry FILE|postgresql://...] [--duration S] [--json]
                        [--no-campaigns] [--campaign-poll S] [--campaign-retry S]
    edgekit fleet init-store postgresql://USER@HOST/DB [--registry FILE] [--json]
"""
import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from edgekit import catalog as C
from edgekit.errors import EdgekitError
from edgekit.fleet import broker as broker_mod
from edgekit.fleet.ingest import Ingest
from edgekit.fleet.service import AlarmSink, FleetService, parse_url
from edgekit.keys.store import KeyStore, edgekit_home
from edgekit.provision.cli import _passphrase
from edgekit.registry.backends import open_registry
from edgekit.registry.db import Registry, default_registry_path
from edgekit.registry.device_copy import copy_devices
from edgekit.registry.postgres import PgRegistry, is_url


# The service's broker password (a deployment's broker, SPEC 13.4), never on the command line.
PASSWORD_ENV = "EDGEKIT_MQTT_PASSWORD"


def _need(module, package):
    try:
        __import__(module)
    except ModuleNotFoundError:
        raise EdgekitError(f"{package} is not installed: pip install {package} (or make test, "
                           "which installs edgekit's dependencies)") from None


def _seconds(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.1 <= value <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r}: give seconds between 0.1 and 86400")
    return value


def cmd_broker(args):
    _need("amqtt", "amqtt")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise EdgekitError("a TLS listener needs both --tls-cert FILE and --tls-key FILE")
    port = args.port if args.port is not None else (
        broker_mod.DEFAULT_TLS_PORT if args.tls_cert else broker_mod.DEFAULT_PORT)
    broker = broker_mod.EmbeddedBroker(args.host, port, tls_cert=args.tls_cert,
                                       tls_key=args.tls_key).start()
    if args.json:   # for a script that starts the broker and reads where it listens
        print(json.dumps({"url": broker.url, "host": broker.host, "port": broker.port}),
              flush=True)
    print(f"MQTT broker listening on {broker.url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        broker.stop()
    return 0


def build_ingest(args, registry, store, signer):
    return Ingest(registry, signer, lambda: store.next_seq(C.ROLE_OPERATOR),
                  on_alarm=AlarmSink(args.webhook))


def start_campaigns(args, registry, store, signer, broker, stop):
    """The campaign driver on its own thread (fleet/campaigns.py), or None with the reason:
    campaigns live in a SQLite registry's tables (ota/campaign_db.py)."""
    if args.no_campaigns:
        return None
    if isinstance(registry, PgRegistry):
        print("campaigns: not run by a service on a PostgreSQL store (their tables are in "
              "the SQLite registry): run them with `edgekit ota campaign ... --via fleet`",
              file=sys.stderr, flush=True)
        return None
    from edgekit.fleet.campaigns import CampaignDriver
    return CampaignDriver(
        registry.path, store, signer, broker, username=args.username,
        password=os.environ.get(PASSWORD_ENV) or None, poll_s=args.campaign_poll,
        retry_s=args.campaign_retry, patience_s=args.campaign_patience,
        log=lambda line: print(line, file=sys.stderr, flush=True)).start(stop)


def cmd_serve(args):
    _need("paho.mqtt", "paho-mqtt")
    broker = parse_url(args.broker, args.ca)
    host, port = broker
    registry = open_registry(args.registry)
    stop = threading.Event()
    driver = None
    try:
        keys = KeyStore(args.keys or edgekit_home() / "keys").require()
        signer = keys.signer(C.ROLE_OPERATOR, _passphrase())
        ingest = build_ingest(args, registry, keys, signer)
        service = FleetService(ingest, host, port, client_id=args.client_id, group=args.group,
                               username=args.username,
                               password=os.environ.get(PASSWORD_ENV) or None, broker=broker)
        if args.duration:
            timer = threading.Timer(args.duration, stop.set)
            timer.daemon = True
            timer.start()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        print(f"fleet service on {broker!r}, storing into {registry.path} "
              "(Ctrl-C to stop)", file=sys.stderr, flush=True)
        driver = start_campaigns(args, registry, keys, signer, broker, stop)
        try:
            service.run(stop)
        except KeyboardInterrupt:
            pass
        stats = ingest.stats()
    finally:
        stop.set()
        if driver is not None:
            driver.join(30)     # a push under way stops at its next device or stage
        registry.close()
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        c, d = stats["counts"], stats["dropped"]
        print(f"received {c['received']}, accepted {c['accepted']}, stored {c['records_stored']} "
              f"records and {c['events_stored']} events, sent {c['acks_sent']} acks")
        refused = ", ".join(f"{k} {v}" for k, v in d.items() if v)
        print(f"dropped: {refused or 'none'}")
        if c.get("store_unavailable"):
            print(f"not stored, the store being unavailable: {c['store_unavailable']} (not "
                  "acknowledged: the devices send them again)")
        if c.get("ota_transfer"):
            print(f"OTA transfer answers seen (for an `ota push --via fleet`): "
                  f"{c['ota_transfer']}")
    return 0


def cmd_init_store(args):
    if not is_url(args.store):
        raise EdgekitError(f"{args.store!r} is not a PostgreSQL URL: write "
                           "postgresql://USER[:PASSWORD]@HOST[:PORT]/DB (a SQLite registry "
                           "needs no init: it creates itself)")
    source_path = Path(args.registry) if args.registry else default_registry_path()
    if not source_path.is_file():
        raise EdgekitError(f"no registry at {source_path} to copy devices from: give the "
                           "provisioning registry with --registry FILE")
    with Registry(source_path) as source, PgRegistry(args.store, migrate=True) as store:
        counts = copy_devices(source, store)
        result = dict(counts, store=store.path, source=str(source.path),
                      schema_version=store.schema_version)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"fleet store {result['store']}: schema v{result['schema_version']}; devices from "
              f"{result['source']}: {counts['added']} added, {counts['updated']} updated")
    return 0


def register(subparsers):
    p = subparsers.add_parser("fleet", help="the fleet on the network: MQTT broker and service",
                              description="Devices publish signed bodies to ek/<id>/up; the "
                                          "service verifies, stores and acknowledges them "
                                          "(docs/fleet.md).")
    sub = p.add_subparsers(dest="fleet_command", metavar="COMMAND", required=True)
    b = sub.add_parser("broker", help="run the embedded MQTT broker (amqtt)",
                       description="An MQTT 3.1.1 broker for a demo, a test or one site; "
                                   "deploy Mosquitto/EMQX with the ACL of SPEC 13.4.")
    b.add_argument("--host", default="127.0.0.1", help="address to listen on")
    b.add_argument("--port", type=int, default=None,
                   help="TCP port (default 1883, 8883 with --tls-cert; 0: any free port)")
    b.add_argument("--tls-cert", metavar="FILE",
                   help="serve mqtts:// (TLS) with this certificate chain (PEM); devices "
                        "verify it against the CA given to them with provision --ca")
    b.add_argument("--tls-key", metavar="FILE", help="the private key (PEM) of --tls-cert")
    b.add_argument("--json", action="store_true", help="print where it listens as JSON")
    b.set_defaults(func=cmd_broker)
    s = sub.add_parser("serve", help="verify, store and acknowledge what devices publish",
                       description="Subscribe to every device's up-topic; drop (and count) "
                                   "messages from unknown devices, with bad signatures or "
                                   "replayed; store the rest in the registry, then publish "
                                   "the signed ack. Alarms: a log line and --webhook.")
    s.add_argument("--broker", default=f"mqtt://127.0.0.1:{broker_mod.DEFAULT_PORT}",
                   help="broker URL mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (TLS)")
    s.add_argument("--ca", metavar="FILE",
                   help="with mqtts://: the CA certificate (PEM or DER) the broker's must chain "
                        "to (default: the system's trust store)")
    s.add_argument("--keys", metavar="DIR", help="key directory (default $EDGEKIT_HOME/keys)")
    s.add_argument("--registry", metavar="FILE|URL",
                   help="where devices' keys are and data goes: a SQLite registry FILE "
                        "(default $EDGEKIT_HOME/registry.sqlite) or the fleet's PostgreSQL "
                        "store, postgresql://USER@HOST/DB (see init-store)")
    s.add_argument("--webhook", metavar="URL", help="POST each alarm (JSON) to this URL")
    s.add_argument("--username", default="edgekit-fleet",
                   help="the service's broker user (password: $EDGEKIT_MQTT_PASSWORD)")
    s.add_argument("--client-id", default="edgekit-fleet",
                   help="MQTT client id: its persistent session holds what arrives meanwhile")
    s.add_argument("--group", help="share the load with other workers ($share/GROUP/...; "
                                   "the broker must support shared subscriptions)")
    s.add_argument("--duration", type=float, default=0, help="stop after SECONDS (0: never)")
    s.add_argument("--json", action="store_true", help="print the final counts as JSON")
    c = s.add_argument_group("OTA campaigns left to the service (ota campaign ... --by-service)")
    c.add_argument("--no-campaigns", action="store_true",
                   help="do not run campaigns (another worker does)")
    c.add_argument("--campaign-poll", type=_seconds, default=10.0, metavar="S",
                   help="how often the registry is asked for campaigns to run (default 10)")
    c.add_argument("--campaign-retry", type=_seconds, default=60.0, metavar="S",
                   help="a campaign with devices not reached (asleep, offline) is tried again "
                        "after S seconds (default 60)")
    c.add_argument("--campaign-patience", type=_seconds, default=60.0, metavar="S",
                   help="a device silent for S seconds is left for the next attempt "
                        "(default 60)")
    s.set_defaults(func=cmd_serve)
    i = sub.add_parser("init-store", help="create the fleet's PostgreSQL store, copy devices in",
                       description="Create or upgrade the registry schema on a PostgreSQL "
                                   "server and copy every device of the SQLite registry (the "
                                   "provisioning laptop's) into it: keys, status, site; the "
                                   "replay counter only ever rises. Run again after "
                                   "provisioning more devices. Workers then run "
                                   "`fleet serve --registry URL` (docs/fleet.md). Needs "
                                   "psycopg: pip install 'psycopg[binary]'.")
    i.add_argument("store", metavar="URL", help="postgresql://USER[:PASSWORD]@HOST[:PORT]/DB "
                                                "(or PGPASSWORD for the password)")
    i.add_argument("--registry", metavar="FILE",
                   help="the SQLite registry to copy devices from (default "
                        "$EDGEKIT_HOME/registry.sqlite)")
    i.add_argument("--json", action="store_true", help="print the counts as JSON")
    i.set_defaults(func=cmd_init_store)
