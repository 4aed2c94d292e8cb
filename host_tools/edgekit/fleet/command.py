"""`edgekit command --via fleet DEVICE ...`: an operator-signed COMMAND published on the
device's down-topic (QoS 1). The broker keeps it in the device's persistent session until
the device next takes its messages (a sleeping device: at its next wake); with a wait, the
device's signed answer is read from its up-topic and verified with its registered key."""
import os
import queue
import threading

from edgekit import catalog as C
from edgekit.errors import EdgekitError, LinkError, ProtocolError
from edgekit.fleet import topics
from edgekit.fleet.topics import SERVICE_USER
from edgekit.protocol import messages


def device_keyring(registry, device_id):
    row = registry.get(device_id)
    if row is None or not row.get("public_key"):
        raise EdgekitError(f"device {device_id} is not in the registry {registry.path}: "
                           "name a provisioned device (edgekit devices list)")
    ring = messages.Keyring()
    ring.add(bytes(row["public_key"]), C.ROLE_DEVICE)
    return ring


def send(registry, device_id, name, args, signer, next_seq, host, port, wait_s=0.0,
         username=SERVICE_USER, password=None, broker=None):
    """Publish the command; return the device's verified answer (a Message), or None when
    `wait_s` is 0 or passes first (the command stays queued for the device). `broker`: a
    BrokerAddress (fleet/service.parse_url) for an mqtts:// broker."""
    import paho.mqtt.client as mqtt

    from edgekit.fleet.service import BrokerAddress
    broker = broker or BrokerAddress(host, port)
    ring = device_keyring(registry, device_id)
    seq = next_seq()
    body = messages.signed(C.COMMAND, {C.K_NAME: name, C.K_ARGS: args}, signer, seq, "host")
    answers = queue.Queue()

    def on_message(client, userdata, m):
        try:
            msg = messages.open_body(bytes(m.payload), ring)
        except ProtocolError:
            return          # not the device's (forged, damaged): never taken for its answer
        if msg.payload.get(C.K_RE) == seq and msg.sender == device_id:
            answers.put(msg)

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                         client_id=f"edgekit-command-{os.getpid()}", clean_session=True)
    client.username_pw_set(username, password)
    client.on_message = on_message
    subscribed = threading.Event()
    client.on_subscribe = lambda *a: subscribed.set()
    broker.apply(client)
    broker.connect(client)      # a failed TLS verification or an unreachable broker: said
    client.loop_start()
    try:
        if wait_s:
            # Before publishing: an awake device can answer at once.
            client.subscribe(topics.up(device_id), qos=topics.QOS)
            if not subscribed.wait(10):
                raise LinkError(f"the broker at {host}:{port} did not confirm the subscription "
                                f"to {topics.up(device_id)} (is this the service user?)")
        info = client.publish(topics.down(device_id), body, qos=topics.QOS)
        info.wait_for_publish(10)
        if not info.is_published():
            raise LinkError(f"the broker at {host}:{port} did not take the command (no PUBACK "
                            "in 10 s)")
        if not wait_s:
            return None
        try:
            msg = answers.get(timeout=wait_s)
        except queue.Empty:
            return None
    finally:
        client.disconnect()
        client.loop_stop()
    if msg.type == C.ERROR:
        code = msg.payload.get(C.K_CODE)
        raise ProtocolError(f"device refused: {C.error_name(code)}: "
                            f"{msg.payload.get(C.K_MSG, '')}", code)
    return msg
