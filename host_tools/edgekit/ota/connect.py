"""Open an operator session with a provisioned device and learn its certified key: what
`edgekit ota push` and `edgekit ota campaign` do before any update moves."""
from edgekit import catalog as C
from edgekit.errors import EdgekitError, ProtocolError
from edgekit.keys.deliver import catch_up
from edgekit.protocol import messages
from edgekit.protocol.clock import ensure as ensure_clock
from edgekit.protocol.session import Session
from edgekit.provision.flow import check_certificate
from edgekit.transport import open_transport


class Link:
    """A device on the other end of `port`: session (operator-signed), its caps, its key."""

    def __init__(self, port, keystore, operator_signer, timeout=10.0, fleet_signer=None):
        self.port = port
        self.transport = open_transport(port)
        try:
            self.session = Session(self.transport, signer=operator_signer, timeout=timeout,
                                   next_seq=lambda: keystore.next_seq(C.ROLE_OPERATOR))
            caps = self.session.hello()
            cert = caps.payload.get(C.K_CERT)
            if caps.payload.get(C.K_STATE) == "factory" or not isinstance(cert, bytes):
                raise EdgekitError(f"the device on {port} is not provisioned: provision it "
                                   "first (edgekit provision)")
            fleet_root = keystore.anchors()["anchors"][C.ROLE_FLEET][0]
            fields = check_certificate(cert, fleet_root)
            self.public_key = bytes(fields[C.K_PUB])
            ring = messages.Keyring()
            ring.add(self.public_key, C.ROLE_DEVICE)
            self.session.device_keys = ring
            self.caps = self.session.hello().payload     # again, now signed and checked
            if self.caps.get(C.K_DEVICE_ID) != fields[C.K_DEVICE_ID]:
                raise ProtocolError("the device's CAPS names another id than its certificate")
            # Before any operator-signed frame: a device behind a key rotation refuses the
            # new operator key. `fleet_signer` (a callable) re-signs a stuck epoch.
            self.key_epoch = catch_up(self.session, self.caps, keystore, fleet_signer)
            self.caps = self.key_epoch["caps"]
            self.clock = ensure_clock(self.session)     # SPEC 8.4: synced when off or unset
        except BaseException:
            self.transport.close()
            raise
        self.device_id = self.caps[C.K_DEVICE_ID]

    def reopen(self):
        """A fresh link to the same port (after an unplug or a reboot), same keys."""
        self.transport.close()
        self.transport = open_transport(self.port)
        self.session.transport = self.transport
        self.session.decoder = type(self.session.decoder)(C.MAX_FRAME_LIMIT)
        return self.session

    def close(self):
        self.transport.close()


def check_target(bundle, caps):
    """Refuse on the host what the device would refuse: a bundle for another board/kind."""
    m = bundle.manifest
    if (m[C.K_BOARD], m[C.K_KIND]) != (caps.get(C.K_BOARD), caps.get(C.K_KIND)):
        raise EdgekitError(f"the bundle is for {m[C.K_BOARD]}/{m[C.K_KIND]} but the device "
                           f"{caps.get(C.K_DEVICE_ID)} is {caps.get(C.K_BOARD)}/"
                           f"{caps.get(C.K_KIND)}: build one for that board and kind")
