"""A device's network config (SPEC 13.5), validated on the host by the firmware's own code
(firmware/net/netcfg.py), so `edgekit provision --broker ...` refuses before touching a device
exactly what the device would refuse."""
import builtins
import importlib.util

from edgekit.errors import EdgekitError
from edgekit.paths import FIRMWARE_DIR


def _load():
    path = FIRMWARE_DIR / "net" / "netcfg.py"
    spec = importlib.util.spec_from_file_location("edgekit_fw_netcfg", path)
    module = importlib.util.module_from_spec(spec)
    module.__dict__["const"] = getattr(builtins, "const", lambda x: x)   # MicroPython's const
    spec.loader.exec_module(module)
    return module


_netcfg = _load()
CA_MAX = _netcfg.CA_MAX     # the largest CA certificate (DER) a device keeps


def build(broker, extra=None, ca=None):
    """The K_NET map for PROV_COMMIT from --broker, a --net file's settings and --ca (the
    mqtts:// broker's CA certificate file, checked here in full: fleet/tls.read_ca)."""
    net = dict(extra or {})
    if broker:
        net["broker"] = broker
    if "broker" not in net:
        raise EdgekitError("a network config needs the broker: --broker mqtt://HOST[:PORT] "
                           "or mqtts://HOST[:PORT] with --ca FILE")
    if ca:
        from edgekit.fleet.tls import read_ca
        net["ca"] = read_ca(ca)
    elif isinstance(net.get("ca"), str):
        raise EdgekitError("the --net file cannot hold the CA certificate: give it with "
                           "--ca FILE")
    try:
        return _netcfg.validate(net)
    except ValueError as exc:
        raise EdgekitError(f"{exc}: fix --broker, --ca or the --net file (docs/fleet.md)") \
            from None


def public(net):
    return _netcfg.public(net)
