# The device's network configuration (SPEC 13.5): validated at provisioning, stored in its
# own crash-safe record ("net"), and never returned in any answer: public() is what CONFIG,
# diag and logs may show (the broker, whether credentials are set, and the SHA-256 of the
# broker's CA certificate, never the certificate or a secret).
import binascii

_MAX = const(128)
# The broker's CA certificate, DER. An RSA-4096 root (ISRG Root X1) is 1,391 bytes, an EC
# P-256 one about 500: 2 KB holds any single root and keeps the record and the parse small.
CA_MAX = const(2048)
KEYS = ("broker", "password", "keepalive", "poll_s", "ssid", "psk", "apn", "ca", "connect")
# "always": connected all the time, the broker polled every poll_s (mains power). "to_report":
# a battery device connects when it has something to send and every poll_s to take what the
# broker holds for it, then disconnects and powers its radio down (SPEC 13.5).
CONNECT = ("always", "to_report")
_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
_PEM_END = b"-----END CERTIFICATE-----"


def endpoint(url):
    """mqtt://HOST[:PORT] or mqtts://HOST[:PORT] -> (host, port, tls); ValueError otherwise."""
    if not isinstance(url, str):
        raise ValueError("broker must be mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")
    if url.startswith("mqtt://"):
        rest, port, tls = url[7:], 1883, False
    elif url.startswith("mqtts://"):
        rest, port, tls = url[8:], 8883, True
    else:
        raise ValueError("broker must be mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")
    rest = rest.rstrip("/")
    host = rest
    if ":" in rest:
        host, p = rest.rsplit(":", 1)
        if not p.isdigit() or not 0 < int(p) < 65536:
            raise ValueError("broker port must be 1..65535")
        port = int(p)
    if not host or "/" in host or "@" in host:
        raise ValueError("broker host missing or malformed")
    return host, port, tls


def host_port(url):
    """The broker's (host, port), whichever scheme."""
    host, port, _ = endpoint(url)
    return host, port


def ca_der(cert):
    """A CA certificate as DER, from DER or PEM bytes; ValueError when it is neither, is
    larger than CA_MAX, or its outer DER length does not match its size. Only the framing is
    checked here: the TLS stack parses it at connect time (the host parses it fully)."""
    if not isinstance(cert, (bytes, bytearray)):
        raise ValueError("network config: ca must be a certificate (DER or PEM bytes)")
    cert = bytes(cert)
    if cert.startswith(_PEM_BEGIN):
        end = cert.find(_PEM_END)
        if end < 0 or len(cert) > CA_MAX * 4 // 3 + 128:
            raise ValueError("network config: ca is not one PEM certificate of at most %d "
                             "bytes" % CA_MAX)
        try:
            cert = binascii.a2b_base64(b"".join(cert[len(_PEM_BEGIN):end].split()))
        except ValueError:
            raise ValueError("network config: ca is PEM with bad base64")
    # A certificate is one DER SEQUENCE with a two-byte length (anything from 256 bytes to
    # 64 KB): 30 82 hi lo, then exactly that many bytes.
    if not 4 < len(cert) <= CA_MAX or cert[0] != 0x30 or cert[1] != 0x82 or \
            (cert[2] << 8 | cert[3]) + 4 != len(cert):
        raise ValueError("network config: ca is not a DER certificate of at most %d bytes"
                         % CA_MAX)
    return cert


def validate(net):
    """A checked copy of `net`, or ValueError naming what is wrong."""
    if not isinstance(net, dict):
        raise ValueError("network config must be a map")
    for k in net:
        if k not in KEYS:
            raise ValueError("network config: unknown key %r" % (k,))
    out = {"keepalive": 60}
    tls = endpoint(net.get("broker"))[2]
    out["broker"] = net["broker"]
    ca = net.get("ca")
    if tls and ca is None:
        # A device has no system trust store: it trusts the broker's CA named here, or none.
        raise ValueError("network config: an mqtts:// broker needs its CA certificate (ca)")
    if ca is not None:
        if not tls:
            raise ValueError("network config: a ca is only for an mqtts:// broker")
        out["ca"] = ca_der(ca)
    for k in ("password", "ssid", "psk", "apn"):
        v = net.get(k)
        if v is not None:
            if not isinstance(v, str) or not 0 < len(v) <= _MAX:
                raise ValueError("network config: %s must be text of 1..%d characters"
                                 % (k, _MAX))
            out[k] = v
    ka = net.get("keepalive", 60)
    if not isinstance(ka, int) or not 10 <= ka <= 3600:
        raise ValueError("network config: keepalive must be 10..3600 seconds")
    out["keepalive"] = ka
    connect = net.get("connect", "always")
    if connect not in CONNECT:
        raise ValueError("network config: connect must be always or to_report")
    out["connect"] = connect
    # Connected all the time, the poll also keeps the connection alive; a sleeping device
    # checks for commands as rarely as once a day.
    poll_max = 3600 if connect == "always" else 86400
    poll = net.get("poll_s", 5)
    if not isinstance(poll, int) or not 1 <= poll <= poll_max:
        raise ValueError("network config: poll_s must be 1..%d seconds with connect = %s"
                         % (poll_max, connect))
    out["poll_s"] = poll
    return out


def ca_fingerprint(net):
    """SHA-256 of the stored CA certificate (hex), or None: what identifies it in an answer."""
    ca = net.get("ca") if net else None
    if ca is None:
        return None
    import hashlib
    return binascii.hexlify(hashlib.sha256(ca).digest()).decode()


def public(net):
    """What may leave the device: no password, passphrase or key, only their presence."""
    if not net:
        return None
    return {"broker": net["broker"], "keepalive": net["keepalive"], "poll_s": net["poll_s"],
            "connect": net.get("connect", "always"),
            "credentials": "password" in net, "wifi": "ssid" in net, "apn": net.get("apn"),
            "tls": "ca" in net, "ca_sha256": ca_fingerprint(net)}
