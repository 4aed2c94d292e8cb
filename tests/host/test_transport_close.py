"""Closing a socket:// link to this machine (an emulated board) costs no wall time: pyserial's
own close sleeps 0.3 s, which every CLI call against an emulated board paid. The peer sees
the connection end; a serial server elsewhere keeps pyserial's grace."""
import socket
import time

from edgekit.transport import SerialTransport
from edgekit.transport.serial_link import _close_local_socket


def test_a_loopback_socket_closes_at_once_and_the_peer_sees_it():
    server = socket.create_server(("127.0.0.1", 0))
    try:
        port = server.getsockname()[1]
        link = SerialTransport(f"socket://127.0.0.1:{port}").open()
        peer, _ = server.accept()
        link.write(b"hi")
        t0 = time.perf_counter()
        link.close()
        took = time.perf_counter() - t0
        peer.settimeout(2)
        assert peer.recv(16) == b"hi"
        assert peer.recv(16) == b""             # end of stream: the link really closed
        peer.close()
        assert took < 0.1, took                 # pyserial's close: 0.3 s
        link.close()                            # twice is harmless
    finally:
        server.close()


class _RemotePort:
    port = "socket://192.0.2.7:4001"            # a serial server on the network

    def __init__(self):
        self._socket = socket.socket()


def test_a_remote_serial_server_keeps_pyserials_close():
    remote = _RemotePort()
    try:
        assert _close_local_socket(remote) is False
        assert remote._socket.fileno() >= 0     # untouched: pyserial closes it
    finally:
        remote._socket.close()
