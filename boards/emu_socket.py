# The emulated board's `socket`: the unix port's own, except that a TCP connection reaches
# its host through the board's network path in the emulator (edgekit/emu/netpath.py), which
# delays and loses what the board's world says (net_latency_ms, net_loss; docs/emulator.md).
# Resolving a host for a TCP connection answers the address of a relay the supervisor opens
# for that host and port, and the relay forwards to them only: the firmware's connections go
# where it connects, a little later. emu_launch installs this as sys.modules["socket"]; the
# firmware never imports it by name.
import socket as _socket

import hal_emu as _hal


def getaddrinfo(host, port, af=0, type=0, proto=0, flags=0):
    found = _socket.getaddrinfo(host, port, af, type, proto, flags)    # unknown: fails here
    if type not in (0, _socket.SOCK_STREAM):
        return found                # the path relays TCP only
    try:
        relay = _hal.net_route(host, port)
    except _hal.HalError as exc:
        raise OSError(5, str(exc))  # EIO: the firmware's retry handles it as a network fault
    if relay is None:
        return found                # no supervisor: the host network as it is
    return _socket.getaddrinfo("127.0.0.1", relay, af, _socket.SOCK_STREAM, proto, flags)


def __getattr__(name):
    return getattr(_socket, name)
