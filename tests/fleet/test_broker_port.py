"""The embedded broker's port race: a port chosen by free_port() can be taken by another
process before the broker binds it (parallel test workers did: 'address already in use').
A chosen port is chosen again; a port the user named is not."""
import socket

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
