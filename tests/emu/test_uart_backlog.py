"""A reset while the host's input is backed up: the bytes in flight are lost (as on a UART)
and the board hears the host again. Before, the bridge stopped reading the host above 4 KB
of backlog and only a drain resumed it; a reset cleared the backlog without resuming, so the
board never heard its host again (found by the serial tray: a Ctrl-C stream through resets)."""
import socket
import time


def said(sock, want, seconds=10.0):
    got, end = b"", time.monotonic() + seconds
    sock.settimeout(0.2)
    while want not in got and time.monotonic() < end:
        try:
            got += sock.recv(4096)
        except socket.timeout:
            pass
    return got


def test_a_reset_under_a_backed_up_input_leaves_the_board_listening(emu):
    b = emu.start("esp32", time="real", bare=True)
    try:
        host = socket.create_connection(("127.0.0.1", int(b.url.rsplit(":", 1)[1])))
        host.sendall(b"\r\n")
        assert b">>>" in said(host, b">>>")
        host.sendall(b"import time; time.sleep(30)\r\n")     # the VM stops reading its input
        time.sleep(0.3)
        host.sendall(b"#" * 20000)                           # more than the bridge holds
        time.sleep(0.5)
        assert b.link_stats()["rx"] < 15000                 # backed up, not delivered
        b.reset()
        time.sleep(0.5)
        host.sendall(b"\r\nprint(6*7)\r\n")
        assert b"42" in said(host, b"42"), "the board no longer hears its host"
        host.close()
    finally:
        b.stop()
