"""pyserial transport for real ports (/dev/ttyUSB0, COM3), ptys and socket:// URLs."""
import errno
import socket
import time

import serial

from edgekit.errors import LinkError

DEFAULT_BAUD = 115200


def parse_port(spec: str) -> str:
    """Accept `serial:/dev/ttyUSB0`, `/dev/ttyUSB0`, `COM3`, `socket://h:p`, `emu:ID`."""
    if not spec:
        raise LinkError("no port given: name a serial port (e.g. /dev/ttyUSB0), "
                        "socket://HOST:PORT, or emu:ID of an emulated board")
    if spec.startswith("serial:"):
        return spec[len("serial:"):]
    if spec.startswith("emu:"):
        from edgekit.emu.port_names import url_for  # only needed for emulated boards
        return url_for(spec[len("emu:"):])
    return spec


_LOOPBACK = ("socket://127.0.0.1:", "socket://localhost:", "socket://[::1]:")


def _close_local_socket(port):
    """Close a socket:// port on this machine (an emulated board) at once. pyserial's close
    sleeps 0.3 s "in case of quick reconnects", for serial servers that take one client at a
    time; the emulator takes many, and the sleep cost every CLI call against an emulated
    board 0.3 s (13 s of a 30-day kiosk soak). A remote serial server keeps the grace."""
    sock = getattr(port, "_socket", None)
    if sock is None or not str(getattr(port, "port", "")).startswith(_LOOPBACK):
        return False
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
    port._socket = None
    port.is_open = False
    return True


class SerialTransport:
    def __init__(self, port: str, baudrate: int = DEFAULT_BAUD):
        self.url = parse_port(port)
        self.baudrate = baudrate
        self._serial = None

    def open(self):
        try:
            self._serial = serial.serial_for_url(self.url, baudrate=self.baudrate, timeout=0,
                                                 do_not_open=True)
            self._serial.open()
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkError(f"cannot open {self.url}: {exc}. Check the cable/port name "
                            f"(`edgekit emu list` shows emulated boards)") from None
        return self

    def close(self):
        port, self._serial = self._serial, None
        if port is None:
            return
        if _close_local_socket(port):
            return
        port.close()

    def __enter__(self):
        return self.open() if self._serial is None else self

    def __exit__(self, *exc):
        self.close()

    def write(self, data: bytes):
        try:
            self._serial.write(data)
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"write to {self.url} failed: {exc} (device unplugged?)") from None

    def read(self, timeout: float) -> bytes:
        """Whatever arrives within `timeout` seconds (b"" if nothing)."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                waiting = self._serial.in_waiting
                if waiting:
                    return self._serial.read(waiting)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return b""
                self._serial.timeout = min(remaining, 0.05)
                chunk = self._serial.read(1)
                self._serial.timeout = 0
                if chunk:
                    more = self._serial.in_waiting
                    return chunk + (self._serial.read(more) if more else b"")
        except (serial.SerialException, OSError) as exc:
            if getattr(exc, "errno", None) == errno.EAGAIN:
                return b""
            raise LinkError(f"read from {self.url} failed: {exc} (device unplugged?)") from None


def open_transport(port: str, baudrate: int = DEFAULT_BAUD) -> SerialTransport:
    return SerialTransport(port, baudrate).open()
