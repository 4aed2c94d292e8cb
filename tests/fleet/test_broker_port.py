"""The embedded broker's start and stop. The port race: a port chosen by free_port() can be
taken by another process before the broker binds it (parallel test workers did: 'address
already in use'); a chosen port is chosen again, a port the user named is not. The stop: a
stop is what a broker restart looks like to clients, even when amqtt's shutdown hangs."""
import asyncio
import socket
import threading
import time

import pytest

from edgekit.errors import EdgekitError
from edgekit.fleet.broker import EmbeddedBroker


def test_a_chosen_port_taken_before_the_bind_is_chosen_again():
    taker = socket.socket()
    taker.bind(("127.0.0.1", 0))
    taker.listen()
    try:
        broker = EmbeddedBroker()
        broker.port = taker.getsockname()[1]      # taken between free_port() and the bind
        broker.start()
        try:
            assert broker.port != taker.getsockname()[1]
        finally:
            broker.stop()
    finally:
        taker.close()


def test_a_named_port_that_is_taken_is_refused_with_the_reason():
    taker = socket.socket()
    taker.bind(("127.0.0.1", 0))
    taker.listen()
    try:
        with pytest.raises(EdgekitError, match="already in use"):
            EmbeddedBroker(port=taker.getsockname()[1]).start()
    finally:
        taker.close()


def test_a_stop_closes_every_client_connection_even_when_the_shutdown_hangs():
    # amqtt's shutdown hung on a client handler in CI; the connections stayed open and the
    # service saw the broker's restart only at its keepalive (30 s).
    mqtt = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed")
    broker = EmbeddedBroker().start()
    gone = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="wm-0a0b0c0d0e0f")
    c.username_pw_set("wm-0a0b0c0d0e0f")
    c.on_disconnect = lambda *a: gone.set()
    c.connect(broker.host, broker.port, keepalive=60)
    c.loop_start()
    try:
        deadline = time.monotonic() + 5
        while not c.is_connected() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.is_connected()

        async def hang():
            await asyncio.Event().wait()
        broker._broker.shutdown = hang
        broker.stop(timeout=1.0)
        assert gone.wait(3.0), "the client was not disconnected by the broker's stop"
        port = broker.port
        broker.start()          # a restart on the same port: the listener was closed too
        assert broker.port == port
        broker.stop()
    finally:
        c.loop_stop()
