"""Open an operator session with a device through the broker: what `edgekit ota push --via
fleet` does before any update moves (the network twin of edgekit.ota.connect.Link).

The device's key comes from the registry (it was certified at provisioning), not from a
certificate in CAPS: over the network even CAPS must be signed by that key to be believed.
The clock is not synced here: a drift measured across a broker's delays means little
(`edgekit clock` over the cable does it).
"""
from edgekit import catalog as C
from edgekit.errors import EdgekitError, LinkError, ProtocolError
from edgekit.fleet.command import device_keyring
from edgekit.fleet.session import DeviceTopics, FleetSession
from edgekit.fleet.topics import SERVICE_USER
from edgekit.keys.deliver import catch_up


class FleetLink:
    """A device reached by id on a broker: session (operator-signed), its caps, its key."""

    def __init__(self, registry, device_id, keystore, operator_signer, broker,
                 username=SERVICE_USER, password=None, min_timeout=12.0, fleet_signer=None):
        """`broker`: a BrokerAddress (fleet/service.parse_url)."""
        ring = device_keyring(registry, device_id)       # refuses an unknown device
        self.device_id = device_id
        self.public_key = bytes(registry.get(device_id)["public_key"])
        self.port = f"{broker!r} ({device_id})"
        self.clock = None
        self.transport = DeviceTopics(broker, device_id, username, password)
        try:
            self.session = FleetSession(self.transport, ring, device_id, operator_signer,
                                        lambda: keystore.next_seq(C.ROLE_OPERATOR),
                                        min_timeout=min_timeout)
            try:
                caps = self.session.hello().payload
            except LinkError:
                raise LinkError(f"{device_id} did not answer through the broker at "
                                f"{broker!r} within {3 * min_timeout:.0f} s: is it connected "
                                "(`edgekit command DEVICE diag` shows net.connected)? A "
                                "device that sleeps answers at its next poll: raise "
                                "--timeout") from None
            if caps.get(C.K_DEVICE_ID) != device_id:
                raise ProtocolError(f"the device on the topics of {device_id} says it is "
                                    f"{caps.get(C.K_DEVICE_ID)}")
            if caps.get(C.K_STATE) == "factory":
                raise EdgekitError(f"{device_id} is in factory state: provision it again")
            self.key_epoch = catch_up(self.session, caps, keystore, fleet_signer)
            self.caps = self.key_epoch["caps"]
        except BaseException:
            self.transport.close()
            raise

    def close(self):
        self.transport.close()
