"""Which ports to talk to: by path, USB serial number, USB location, URL or emulator id.

    /dev/ttyUSB0  COM3             a path
    sn:5A3C0012                    the USB serial number (stable across replugging)
    loc:1-1.4                      the USB location (a fixed socket on a provisioning jig)
    socket://127.0.0.1:4001        any pyserial URL (emulated boards)
    emu:esp32-3                    an emulated board by id
    auto                           every USB serial port whose vendor is a known MCU or
                                   USB-UART bridge (Espressif, Raspberry Pi, CP210x, CH34x, FTDI)
"""
from serial.tools import list_ports

from edgekit.errors import EdgekitError

KNOWN_VENDORS = {0x303A: "Espressif", 0x2E8A: "Raspberry Pi", 0x10C4: "Silicon Labs CP210x",
                 0x1A86: "WCH CH34x", 0x0403: "FTDI"}


def _usb_ports():
    return [p for p in list_ports.comports() if p.vid is not None]


def resolve(spec: str) -> list:
    """One spec -> a list of port names/URLs (several for `auto`)."""
    if spec == "auto":
        found = [p.device for p in _usb_ports() if p.vid in KNOWN_VENDORS]
        if not found:
            raise EdgekitError("--ports auto found no USB serial board (looked for "
                               + ", ".join(KNOWN_VENDORS.values()) + "); plug one in or name "
                               "the port")
        return sorted(found)
    for prefix, attr in (("sn:", "serial_number"), ("loc:", "location")):
        if spec.startswith(prefix):
            want = spec[len(prefix):]
            matches = [p.device for p in _usb_ports() if getattr(p, attr) == want]
            if not matches:
                known = ", ".join(f"{p.device} ({getattr(p, attr)})" for p in _usb_ports())
                raise EdgekitError(f"no USB port with {attr.replace('_', ' ')} {want!r}; "
                                   f"present: {known or 'none'}")
            return matches
    return [spec]


def resolve_all(specs) -> list:
    ports = []
    for spec in specs:
        for port in resolve(spec):
            if port not in ports:
                ports.append(port)
    return ports


def describe():
    """Rows for `edgekit ports` style listings."""
    return [{"port": p.device, "vid": p.vid, "pid": p.pid, "serial_number": p.serial_number,
             "location": p.location, "vendor": KNOWN_VENDORS.get(p.vid, p.manufacturer)}
            for p in _usb_ports()]
