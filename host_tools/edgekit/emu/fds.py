"""Keep the supervisor's file descriptors above 1024.

A test process that hosts a fleet in-process holds six descriptors per board; at 200 boards
the numbers pass 1024, and pyserial's socket:// handler (select.select) then fails on any
port the test opens ("filedescriptor out of range in select()"). The supervisor's own loop
uses epoll, which does not care, so its descriptors move up and the low ones stay free.
"""
import fcntl
import resource
import socket

_FLOOR = 1024


def _room():
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft > 4 * _FLOOR


def lift(fd):
    """Return a duplicate of `fd` numbered >= 1024 (closing `fd`), or `fd` if no room."""
    if fd >= _FLOOR or not _room():
        return fd
    try:
        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _FLOOR)
    except OSError:
        return fd
    import os
    os.close(fd)
    return high


def lift_socket(sock):
    """The same for a socket object (a new object on the lifted descriptor)."""
    if sock.fileno() >= _FLOOR or not _room():
        return sock
    high = lift(sock.detach())
    return socket.socket(fileno=high)
