"""A throwaway fleet for HIL runs, and provisioned devices to talk to.

On a bench the same code provisions the real board with a test fleet: a HIL suite never
needs production keys (and must never get them).
"""
from edgekit import catalog as C
from edgekit.keys.store import KeyStore
from edgekit.protocol import messages
from edgekit.protocol.session import Session
from edgekit.provision import flow
from edgekit.registry.db import Registry

TEST_PASSPHRASE = "edgekit hil test fleet only"


class HilFleet:
    def __init__(self, directory):
        self.keystore = KeyStore(directory / "keys")
        self.keystore.init(TEST_PASSPHRASE)
        self.fleet = flow.Fleet(self.keystore, self.keystore.signer("fleet", TEST_PASSPHRASE),
                                self.keystore.signer("operator", TEST_PASSPHRASE))
        self.registry = Registry(directory / "registry.sqlite")

    def signer(self, role):
        return self.keystore.signer(role, TEST_PASSPHRASE)


class Device:
    """A provisioned device: `session` signs as the operator and checks the device key."""

    def __init__(self, target, transport, session, row):
        self.target = target
        self.transport = transport
        self.session = session
        self.id = row["device_id"]
        self.public_key = bytes(row["public_key"])
        self.row = row

    def command(self, name, **args):
        msg = self.session.request(C.COMMAND, {C.K_NAME: name, C.K_ARGS: args}, timeout=10,
                                   expect=C.COMMAND_RESULT)
        return msg.payload[C.K_RESULT]

    def fetch_telemetry(self, count=32):
        """[(journal seq, SenML pack)] not yet acknowledged, and whether more remain."""
        msg = self.session.request(C.TELEMETRY_FETCH, {C.K_COUNT: count}, timeout=10,
                                   expect=C.TELEMETRY)
        return [tuple(r) for r in msg.payload[C.K_RECORDS]], msg.payload[C.K_MORE], msg

    def ack_telemetry(self, upto):
        return self.session.request(C.TELEMETRY_ACK, {C.K_UPTO: upto}, timeout=10,
                                    expect=C.ACK)

    def drain_telemetry(self):
        """Fetch and acknowledge everything pending; return the packs in order."""
        packs = []
        while True:
            rows, more, _ = self.fetch_telemetry()
            if not rows:
                return packs
            packs.extend(pack for _, pack in rows)
            self.ack_telemetry(rows[-1][0])
            if not more:
                return packs

    def fetch_events(self, count=32):
        msg = self.session.request(C.EVENT_FETCH, {C.K_COUNT: count}, timeout=10,
                                   expect=C.EVENTS)
        return msg.payload[C.K_RECORDS]

    def fetch_logs(self, count=32):
        """[(journal seq, level, text)] from the device's log journal."""
        msg = self.session.request(C.LOG_FETCH, {C.K_COUNT: count}, timeout=10,
                                   expect=C.LOG)
        return [tuple(r) for r in msg.payload[C.K_RECORDS]]

    def open_maintenance(self, minutes=5):
        """Open the REPL for `minutes` (SPEC 12): what a test that needs the REPL of a
        provisioned board (mpremote, flash --wipe) does first, as a technician would."""
        from edgekit.maintenance_cli import open_window
        return open_window(self.session, self.id, minutes)[1]

    def reconnect(self):
        """After a reboot or an unplug: a fresh link, same keys and seq counter."""
        self.transport.close()
        self.transport = self.target.transport()
        self.session.transport = self.transport
        self.session.decoder = type(self.session.decoder)(C.MAX_FRAME_LIMIT)
        return self

    def close(self):
        self.transport.close()


def provision(target, test_fleet, kind, site="hil", config=None, timeout=10.0):
    transport = target.transport()
    session = Session(transport, timeout=timeout)
    row = flow.provision(session, test_fleet.fleet, test_fleet.registry, kind, site,
                         config=config)
    ring = messages.Keyring()
    ring.add(bytes(row["public_key"]), C.ROLE_DEVICE)
    session.device_keys = ring
    session.signer = test_fleet.fleet.operator_signer
    session.next_seq = lambda: test_fleet.keystore.next_seq(C.ROLE_OPERATOR)
    return Device(target, transport, session, row)
