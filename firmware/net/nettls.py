# TLS for the network path (SPEC 13.6): the broker must prove itself with a certificate that
# chains to the CA in the device's network config and names the host of its broker URL. No
# system trust store, no "insecure" switch: a device trusts that one CA or connects to nothing.
#
# MQTTClient takes the result as `ssl` and calls `ssl.wrap_socket(sock, server_hostname=host)`
# (our mqtt.py, and umqtt.simple from 1.4): mbedTLS checks the chain and the name during the
# handshake and raises (ValueError naming the reason, or OSError); the connection is closed
# before a byte of MQTT is sent. The mbedTLS context is made at the first connect, not at
# boot: a CA the TLS stack cannot parse makes every connect fail (netlink's backoff, counted
# in diag), never the device's start. Heap: bench/bench_mqtt_tls.py.


class Verifier:
    """What MQTTClient calls `ssl`: wraps a socket verifying the broker against `ca` (DER)."""

    def __init__(self, ca):
        self.ca = ca
        self._ctx = None

    def _context(self):
        try:
            import tls
        except ImportError:
            raise OSError(95, "this image has no tls module: an mqtts:// broker needs one")
        ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = tls.CERT_REQUIRED     # PROTOCOL_TLS_CLIENT's default, said anyway
        ctx.load_verify_locations(self.ca)      # the C method's one argument: cadata
        return ctx

    def wrap_socket(self, sock, server_hostname=None):
        if not server_hostname:
            raise ValueError("TLS to a broker needs its host name (CERT_REQUIRED)")
        if self._ctx is None:
            self._ctx = self._context()     # once: the parsed CA is kept, not re-parsed
        return self._ctx.wrap_socket(sock, server_hostname=server_hostname)


def context(cfg):
    """A Verifier for cfg's mqtts:// broker, or None when the broker is plain mqtt://."""
    ca = cfg.get("ca")
    return None if ca is None else Verifier(ca)


def check(client):
    """Refuse a client that would not use the Verifier: umqtt.simple before 1.4 took
    `ssl=True, ssl_params={...}` and wraps without checking the broker's certificate."""
    if client.ssl and hasattr(client, "ssl_params"):
        raise OSError(95, "umqtt.simple older than 1.4 cannot verify an mqtts:// broker: "
                          "build the image with a newer micropython-lib")
