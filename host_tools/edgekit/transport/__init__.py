"""Transports: how bytes reach a device. One small protocol; serial/pty/TCP all go through
pyserial (`serial_for_url` takes `socket://HOST:PORT` too), so a USB board and an emulated
board are opened the same way.

    transport.open(); transport.write(data); transport.read(timeout) -> bytes; transport.close()
"""
from edgekit.transport.serial_link import SerialTransport, open_transport, parse_port

__all__ = ["SerialTransport", "open_transport", "parse_port"]
