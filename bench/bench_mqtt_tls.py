"""What TLS costs the device (issue 15, SPEC 13.6): the device's MQTT client (firmware/net/
mqtt.py with nettls, the CA from a validated network config) in the real MicroPython VM,
connecting to the embedded broker plain and over TLS (a throwaway ECDSA P-256 CA). Per mode:
the MicroPython GC heap held while connected, the connect time and 20 QoS 1 publishes of 200
bytes, and the smallest VM heap (8 KB steps) in which each mode connects and publishes.
Figures, never asserts. What this does not measure: mbedTLS's own memory. On the unix VM and
the ESP32 (IDF heap) mbedTLS allocates with malloc, outside the GC heap; on the Pico W
(MICROPY_MBEDTLS_CONFIG_BARE_METAL) it allocates from the GC heap. Its size is set at build
time by MicroPython's mbedTLS config (extmod/mbedtls/mbedtls_config_common.h: 16 KB in and
4 KB out record buffers per session) plus the parsed CA and the handshake's state."""
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "host_tools"))

from edgekit.fleet.broker import EmbeddedBroker  # noqa: E402
from edgekit.testing import mp  # noqa: E402
from edgekit.testing.pki import CA  # noqa: E402

SCRIPT = r'''
import binascii, gc, micropython, time
import netcfg, nettls
from mqtt import MQTTClient
cfg = netcfg.validate(CFG)
host, port = netcfg.host_port(cfg["broker"])
c = MQTTClient(b"wm-1", host, port, user=b"wm-1", keepalive=30, timeout=5,
               ssl=nettls.context(cfg))
gc.collect()
free = gc.mem_free()
t = time.ticks_ms()
c.connect(clean_session=True)
ms = time.ticks_diff(time.ticks_ms(), t)
gc.collect()
held = free - gc.mem_free()
body = b"\xd2" + b"x" * 199
t = time.ticks_ms()
for i in range(20):
    c.publish(b"ek/wm-1/up", body, qos=1)
pub = time.ticks_diff(time.ticks_ms(), t)
c.disconnect()
print("RESULT", held, ms, pub)
'''


def run(cfg, heap):
    out = mp.run(SCRIPT.replace("CFG", repr(cfg)), heap=heap, timeout=60)
    return tuple(int(x) for x in re.search(r"RESULT (\d+) (\d+) (\d+)",
                                           out).groups())


def _works(cfg, kb):
    try:
        run(cfg, f"{kb}K")
        return True
    except mp.MicroPythonError:
        return False


def main():
    with tempfile.TemporaryDirectory() as tmp:
        ca = CA(Path(tmp))
        cert, key = ca.server(("localhost",))
        plain = EmbeddedBroker().start()
        tls = EmbeddedBroker(tls_cert=cert, tls_key=key).start()
        try:
            modes = {"plain": {"broker": f"mqtt://localhost:{plain.port}"},
                     "tls": {"broker": f"mqtts://localhost:{tls.port}", "ca": ca.der}}
            print(f"device MQTT client in the MicroPython VM (110K heap), CA {len(ca.der)} "
                  "bytes DER (ECDSA P-256)")
            print(f"{'mode':6} {'GC heap held':>13} {'connect ms':>11} "
                  f"{'20 publishes ms':>16} {'smallest VM heap':>17}")
            for name, cfg in modes.items():
                held, ms, pub = run(cfg, "110K")
                smallest = next((kb for kb in range(16, 112, 8) if _works(cfg, kb)), None)
                print(f"{name:6} {held:>11} B {ms:>11} {pub:>16} "
                      f"{(str(smallest) + ' KB') if smallest else '> 104 KB':>17}")
        finally:
            plain.stop()
            tls.stop()


if __name__ == "__main__":
    main()
