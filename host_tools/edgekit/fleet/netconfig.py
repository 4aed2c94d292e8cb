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


def build(broker, extra=None):
    """The K_NET map for PROV_COMMIT from --broker and a --net file's settings."""
    net = dict(extra or {})
    if broker:
        net["broker"] = broker
    if "broker" not in net:
        raise EdgekitError("a network config needs the broker: --broker mqtt://HOST[:PORT]")
    try:
        return _netcfg.validate(net)
    except ValueError as exc:
        raise EdgekitError(f"{exc}: fix --broker or the --net file (docs/fleet.md)") from None


def public(net):
    return _netcfg.public(net)
