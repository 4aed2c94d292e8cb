# The device's network configuration (SPEC 13.5): validated at provisioning, stored in its
# own crash-safe record ("net"), and never returned in any answer: public() is what CONFIG,
# diag and logs may show (the broker and whether credentials are set, never their values).
_MAX = const(128)
KEYS = ("broker", "password", "keepalive", "poll_s", "ssid", "psk", "apn")


def host_port(url):
    """mqtt://HOST[:PORT] -> (host, port); ValueError otherwise."""
    if not isinstance(url, str) or not url.startswith("mqtt://"):
        raise ValueError("broker must be mqtt://HOST[:PORT] (mqtts: not yet)")
    rest = url[7:].rstrip("/")
    host, port = rest, 1883
    if ":" in rest:
        host, p = rest.rsplit(":", 1)
        if not p.isdigit() or not 0 < int(p) < 65536:
            raise ValueError("broker port must be 1..65535")
        port = int(p)
    if not host or "/" in host or "@" in host:
        raise ValueError("broker host missing or malformed")
    return host, port


def validate(net):
    """A checked copy of `net`, or ValueError naming what is wrong."""
    if not isinstance(net, dict):
        raise ValueError("network config must be a map")
    for k in net:
        if k not in KEYS:
            raise ValueError("network config: unknown key %r" % (k,))
    out = {"keepalive": 60}
    host_port(net.get("broker"))
    out["broker"] = net["broker"]
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
    poll = net.get("poll_s", 5)
    if not isinstance(poll, int) or not 1 <= poll <= 3600:
        raise ValueError("network config: poll_s must be 1..3600 seconds")
    out["poll_s"] = poll
    return out


def public(net):
    """What may leave the device: no password, passphrase or key, only their presence."""
    if not net:
        return None
    return {"broker": net["broker"], "keepalive": net["keepalive"], "poll_s": net["poll_s"],
            "credentials": "password" in net, "wifi": "ssid" in net, "apn": net.get("apn")}
