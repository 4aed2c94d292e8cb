"""The operator's link to one provisioned device, shared by monitor, command and maintenance.

connect() says HELLO, checks the device's certificate against this fleet's root and its key
against the registry, brings a device behind a key rotation up to the current epoch, and
(with need_operator) signs as the operator and sets the device's clock (SPEC 8.4).
"""
import time

from edgekit import catalog as C
from edgekit.errors import EdgekitError, LinkError
from edgekit.keys.deliver import LazySigner, catch_up
from edgekit.keys.store import KeyStore, edgekit_home
from edgekit.protocol import messages
from edgekit.protocol.clock import ensure as ensure_clock
from edgekit.protocol.session import Session
from edgekit.provision import flow
from edgekit.provision.cli import _passphrase
from edgekit.registry.db import Registry
from edgekit.transport import SerialTransport


def connect(args, need_operator):
    """(session, transport, registry, device_id) of the device at args.port."""
    store = KeyStore(args.keys or edgekit_home() / "keys").require()
    fleet_pub = store.anchors()["anchors"][C.ROLE_FLEET][0]
    transport = SerialTransport(args.port).open()
    session = Session(transport, timeout=args.timeout)
    caps = session.hello()
    if caps.payload.get(C.K_STATE) == "factory":
        transport.close()
        raise EdgekitError("the device is in factory state: provision it first")
    fields = flow.check_certificate(caps.payload[C.K_CERT], fleet_pub)
    registry = Registry(args.registry)
    known = registry.get(fields[C.K_DEVICE_ID])
    if known is None or bytes(known["public_key"]) != fields[C.K_PUB]:
        transport.close()
        raise EdgekitError(f"device {fields[C.K_DEVICE_ID]} is not in this registry with that "
                           "key: provision it with this fleet, or use its registry (--registry)")
    ring = messages.Keyring()
    ring.add(fields[C.K_PUB], C.ROLE_DEVICE)
    session.device_keys = ring
    # Before any operator-signed frame: a device behind a key rotation refuses the new key.
    try:
        catch_up(session, messages.open_body(caps.body, ring).payload, store,
                 fleet_signer=LazySigner(store, _passphrase), registry=registry)
    except BaseException:
        transport.close()
        raise
    if need_operator:
        # Kept on args: a monitor that reconnects does not ask for the passphrase again.
        session.signer = getattr(args, "operator_signer", None) or \
            store.signer(C.ROLE_OPERATOR, _passphrase())
        args.operator_signer = session.signer
        session.next_seq = lambda: store.next_seq(C.ROLE_OPERATOR)
        try:
            ensure_clock(session, registry, fields[C.K_DEVICE_ID])  # SPEC 8.4: off or unset
        except BaseException:
            transport.close()
            raise
    return session, transport, registry, fields[C.K_DEVICE_ID]


def reconnect(args, end):
    """Open the link again (the cable may be out for a while); None if `end` passes first."""
    while end is None or time.monotonic() < end:
        try:
            return connect(args, need_operator=True)
        except LinkError:
            time.sleep(1.0)
    return None


def add_common_options(p):
    """The options every live-device command takes: port, keys, registry, timeout, --json."""
    p.add_argument("port", help="serial port, socket://HOST:PORT or emu:ID")
    p.add_argument("--keys", metavar="DIR", help="key directory (default $EDGEKIT_HOME/keys)")
    p.add_argument("--registry", metavar="FILE", help="registry database")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per answer")
    p.add_argument("--json", action="store_true", help="JSON output")
