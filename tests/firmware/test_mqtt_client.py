"""firmware/net/mqtt.py (the device's MQTT 3.1.1 client, umqtt.simple's API) in the real
MicroPython VM: against the embedded broker, a QoS 1 publish is acknowledged and a message
published for the device while it was away is delivered on reconnect (persistent session);
against a hostile broker, an oversized or malformed packet is an OSError, never an
allocation of the size it claims. And netcfg: what a device may show of its network config
never holds the password or Wi-Fi passphrase."""
import socket
import threading
import time

import pytest

from edgekit.errors import EdgekitError
from edgekit.fleet import netconfig
from edgekit.testing import mp

DEVICE = r'''
from mqtt import MQTTClient
import time
got = []
c = MQTTClient(b"wm-1", "127.0.0.1", PORT, user=b"wm-1", keepalive=30, timeout=5)
c.set_callback(lambda t, m: got.append((t, m)))
print("present", c.connect(clean_session=False))
c.subscribe(b"ek/wm-1/down", 1)
c.publish(b"ek/wm-1/up", b"\xd2" + b"x" * 900, qos=1)
c.disconnect()
print("away")
import sys
sys.stdin.readline()            # the host publishes while the device is away
print("present", c.connect(clean_session=False))
t = time.ticks_ms()
while not got and time.ticks_diff(time.ticks_ms(), t) < 5000:
    c.check_msg()
print("got", got)
'''


def test_publish_and_a_message_kept_while_away(tmp_path):
    pytest.importorskip("amqtt", reason="amqtt (the embedded broker) is not installed")
    mqtt = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed")
    import subprocess

    from edgekit.fleet.broker import EmbeddedBroker
    from edgekit.paths import micropython_binary
    with EmbeddedBroker() as broker:
        up = []
        svc = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="edgekit-fleet")
        svc.username_pw_set("edgekit-fleet")
        svc.on_message = lambda c, u, m: up.append(len(m.payload))
        svc.connect(broker.host, broker.port)
        svc.loop_start()
        svc.subscribe("ek/+/up", 1)
        time.sleep(0.3)
        script = tmp_path / "dev.py"
        script.write_text(mp._prelude(()) + DEVICE.replace("PORT", str(broker.port)))
        vm = subprocess.Popen([micropython_binary(), str(script)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
        try:
            assert vm.stdout.readline().split() == ["present", "0"]
            assert vm.stdout.readline().strip() == "away"
            svc.publish("ek/wm-1/down", b"\xd2queued", qos=1).wait_for_publish(3)
            vm.stdin.write("\n")
            vm.stdin.flush()
            out, _ = vm.communicate(timeout=20)
        finally:
            vm.kill()
            svc.loop_stop()
        assert out.split("\n")[0].split() == ["present", "1"]      # the session was kept
        assert "got [(b'ek/wm-1/down', b'\\xd2queued')]" in out
        assert up == [901]


HOSTILE = r'''
from mqtt import MQTTClient
import gc
c = MQTTClient(b"wm-1", "127.0.0.1", PORT, user=b"wm-1", timeout=2, max_packet=2048)
c.set_callback(lambda t, m: print("cb", len(m)))
c.connect(clean_session=False)
gc.collect()
free = gc.mem_free()
for i in range(3):
    try:
        print("op", c.check_msg() if i else c.wait_msg())
    except OSError as e:
        print("oserror", e.args[0], free - gc.mem_free() < 4096)
        break
'''


@pytest.mark.parametrize("packet, expect", [
    (b"\x30\xff\xff\xff\x7f", "oserror -2 True"),       # claims 256 MB: refused unread
    (b"\x30\x80\x80\x80\x80\x01", "oserror -2 True"),   # a 5th length byte: malformed
    (b"\x30\x05\x00\x09ab", "oserror -2 True"),         # topic longer than the packet
    (b"\x34\x06\x00\x01a\x00\x01b", "oserror -2 True"),  # QoS 2: never subscribed to
])
def test_a_hostile_broker_gets_an_oserror_not_an_allocation(packet, expect):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]

    def broker():
        conn, _ = srv.accept()
        conn.recv(1024)                                 # CONNECT
        conn.sendall(b"\x20\x02\x00\x00" + packet)      # CONNACK, then the hostile packet
        time.sleep(3)
        conn.close()
    threading.Thread(target=broker, daemon=True).start()
    out = mp.run(HOSTILE.replace("PORT", str(port)), timeout=30)
    srv.close()
    assert expect in out, out


def test_network_credentials_never_in_what_a_device_shows():
    net = netconfig.build("mqtt://broker.example:8883", {"password": "s3cret", "ssid": "city",
                                                         "psk": "wifi-pass", "poll_s": 10})
    shown = repr(netconfig.public(net))
    assert "broker.example" in shown and "s3cret" not in shown and "wifi-pass" not in shown
    for bad in ({"broker": "http://x"}, {"broker": "mqtt://x:99999"}, {"broker": "mqtt://"},
                {"broker": "mqtt://x", "token": "y"}, {"broker": "mqtt://x", "keepalive": 1},
                {"broker": "mqtt://x", "password": ""}):
        with pytest.raises(EdgekitError):
            netconfig.build(None, bad)


RXBUF = r'''
from mqtt import MQTTClient
import gc
import json
c = MQTTClient(b"wm-1", "127.0.0.1", PORT, user=b"wm-1", timeout=5)
c.set_rxbuf(bytearray(MAX))
# [bodies, as views, pattern intact, refused size, hold the next view, bytes bodies]
st = [0, 0, 0, 0, 0, 0]


def cb(topic, m):
    n = len(m)
    seq = st[0]
    st[0] = seq + 1
    if type(m) is memoryview:
        st[1] += 1
    else:
        st[5] += 1
    if n == MAX and m[0] == seq & 0xFF and m[n - 1] == (seq + n - 1) & 0xFF:
        st[2] += 1
    if st[4]:
        st[4] = 0                   # keep this one: the next comes while it is lent
    else:
        c.release()


def refused(topic, n):
    st[3] = n


c.set_callback(cb)
c.on_refused = refused
c.connect(clean_session=False)
for _ in range(WARM):
    c.wait_msg()
gc.collect()
held_before = gc.mem_alloc()
gc.disable()                        # every byte allocated below stays counted
a0 = gc.mem_alloc()
for _ in range(MANY):
    c.wait_msg()
a1 = gc.mem_alloc()
gc.enable()
gc.collect()
held_after = gc.mem_alloc()
gc.disable()
b0 = gc.mem_alloc()
c.wait_msg()                        # the oversized one
b1 = gc.mem_alloc()
gc.enable()
c.wait_msg()                        # the stream is in step after it
st[4] = 1
c.wait_msg()                        # lent, not released ...
c.wait_msg()                        # ... so this one gets bytes of its own
c.release()
c.wait_msg()                        # and the buffer serves again
print(json.dumps({"st": st, "per_msg": (a1 - a0) / MANY, "held": held_after - held_before,
                  "oversized_alloc": b1 - b0}))
'''


def _publish(seq, size, qos, pid):
    topic = b"ek/wm-1/down"
    payload = bytes((seq + i) & 0xFF for i in range(size))
    rest = len(topic).to_bytes(2, "big") + topic + (pid.to_bytes(2, "big") if qos else b"") \
        + payload
    n, length = len(rest), bytearray()
    while True:
        length.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            break
    return bytes((0x30 | qos << 1,)) + bytes(length) + rest


def test_max_size_bodies_land_in_one_buffer_and_an_oversized_one_is_never_allocated():
    """Many max_frame PUBLISHes allocate no body each (counted with the collector off) and
    leave the heap as it was; a larger one is drained and refused with next to nothing
    allocated, acknowledged, and the next message is read in step."""
    MAX, WARM, MANY = 1024, 5, 100
    sizes = [MAX] * (WARM + MANY) + [MAX + 976] + [MAX] * 4
    packets = [_publish(i if size == MAX else 0, size, i % 2, i + 1)
               for i, size in enumerate(sizes)]
    # The seq of the bodies after the oversized one (which the callback never sees).
    for k in range(WARM + MANY + 1, len(sizes)):
        packets[k] = _publish(k - 1, MAX, k % 2, k + 1)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    acks = bytearray()

    def broker():
        conn, _ = srv.accept()
        conn.recv(1024)                                 # CONNECT
        conn.sendall(b"\x20\x02\x00\x00" + b"".join(packets))
        conn.settimeout(20)
        try:
            while True:
                got = conn.recv(4096)
                if not got:
                    break
                acks.extend(got)
        except OSError:
            pass
        conn.close()
    t = threading.Thread(target=broker, daemon=True)
    t.start()
    out = mp.run_json(RXBUF.replace("PORT", str(port)).replace("MAX", str(MAX))
                      .replace("WARM", str(WARM)).replace("MANY", str(MANY)), timeout=60)
    t.join(25)
    srv.close()
    n = len(sizes) - 1
    assert out["st"] == [n, n - 1, n, MAX + 976, 0, 1], out
    # What a message allocates is a few small objects (the topic, a view, the PUBACK: 8
    # blocks of 32 bytes on this 64-bit VM), garbage at once; never its body.
    assert out["per_msg"] <= 320, out
    assert abs(out["held"]) < 256, out      # the heap did not grow over 100 bodies
    assert out["oversized_alloc"] <= 320, out   # 2,000 bytes drained 64 at a time
    # Every QoS 1 message acknowledged, the refused one too (or the broker would resend it).
    want = [i + 1 for i in range(len(sizes)) if i % 2]
    pubacks = [int.from_bytes(acks[k + 2:k + 4], "big") for k in range(0, len(acks), 4)
               if acks[k] == 0x40]
    assert pubacks == want


STEPS = r'''
from mqtt import MQTTClient
import time
c = MQTTClient(b"wm-1", "127.0.0.1", PORT, user=b"wm-1", timeout=TIMEOUT)
c.set_callback(lambda t, m: None)
t0 = time.ticks_ms()
c.begin_connect(clean_session=False)
steps, longest, present = 0, time.ticks_diff(time.ticks_ms(), t0), None
try:
    while present is None:
        t = time.ticks_ms()
        present = c.connect_step()
        longest = max(longest, time.ticks_diff(time.ticks_ms(), t))
        steps += 1
        time.sleep_ms(20)           # the device's other tasks, its serial link
    print("connected", present, steps > 1, longest)
except OSError as e:
    print("oserror", e.args[0], time.ticks_diff(time.ticks_ms(), t0) // 1000, longest)
'''


def _steps(port, timeout=2):
    out = mp.run(STEPS.replace("PORT", str(port)).replace("TIMEOUT", str(timeout)),
                 timeout=30).split()
    return out[0], out[1:]


def test_a_broker_that_never_answers_costs_each_step_nothing_and_times_out():
    # A path that swallows the CONNECT (or a broker too loaded to answer): the blocking
    # connect held the device, its serial link included, for the whole timeout.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    try:
        what, (code, seconds, longest) = _steps(srv.getsockname()[1], timeout=2)
    finally:
        srv.close()
    assert (what, code) == ("oserror", "110") and 1 <= int(seconds) <= 3
    assert int(longest) < 50, f"a step took {longest} ms"


def test_a_refused_connect_fails_at_its_step():
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    free = port.getsockname()[1]
    port.close()                      # nothing listens there
    what, rest = _steps(free, timeout=5)
    assert what == "oserror" and rest[0] != "110" and int(rest[1]) < 2, rest


def test_steps_reach_a_real_broker():
    pytest.importorskip("amqtt", reason="amqtt (the embedded broker) is not installed")
    from edgekit.fleet.broker import EmbeddedBroker
    with EmbeddedBroker() as broker:
        what, (present, several, longest) = _steps(broker.port, timeout=5)
    assert (what, present, several) == ("connected", "0", "True") and int(longest) < 50
