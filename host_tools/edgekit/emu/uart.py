"""The board's UART as the host sees it: a TCP listener and a pty, paced to the baud rate.

VM side: the VM's stdin/stdout are the slave of a pty whose master this bridge reads and
writes. Host side: any number of TCP clients on 127.0.0.1:PORT (pyserial and mpremote open
`socket://127.0.0.1:PORT`) plus a host-facing pty (/dev/pts/N, also symlinked at a stable
path). Both directions are paced to baud/10 bytes per second (8N1: ten bit times a byte)
with a token bucket; the VM's writes block when the bridge stops reading, as a real UART's
TX does. Faults: noise (flipped, dropped, duplicated bytes at a rate, either direction) and
unplug (clients dropped, connections refused, the pty hung up, for a duration).
"""
import errno
import os
import pty
import socket
import tty

from edgekit.emu.fds import lift, lift_socket
from edgekit.emu.wire import CHUNK, NOISE_KINDS, Noise, Pacer  # noqa: F401 (re-exported)
_RX_HIGH = 4096      # stop reading host clients above this many queued bytes
_CLIENT_MAX = 1 << 20  # a client not reading its output loses it beyond this backlog


class Uart:
    """One board's UART bridge. All methods run on the supervisor's event loop."""

    def __init__(self, loop, baud, tty_link=None, port=0):
        self.loop = loop
        self.baud = baud
        self.rx_pacer = Pacer(loop, baud / 10.0)   # host -> VM
        self.tx_pacer = Pacer(loop, baud / 10.0)   # VM -> host
        self.noise = {"rx": Noise(), "tx": Noise()}
        self.to_vm = bytearray()
        self.vm_fd = None
        self.on_output = None       # callable(bytes) -> bytes: the board filters VM output
        self.on_interrupt = None    # callable() -> bool: True if 0x03 became a SIGINT
        self.on_delivered = None    # callable(): bytes reached the VM (wakes hal.wait)
        self.tx_unpaced = None      # callable() -> bool: send VM output as fast as it comes
        self.clients = {}           # socket -> bytearray of unsent output
        self.listener = None
        self.port = port
        self.pty_master = None
        self.pty_path = None
        self.tty_link = tty_link    # stable symlink to the current pty
        self.pty_attached = False
        self.plugged = True
        self.stats = {"rx": 0, "tx": 0, "dropped_tx": 0}
        self._rx_timer = None
        self._tx_timer = None
        self._probe_timer = None
        self._reading_vm = False
        self._replug_timer = None
        self._host_paused = False
        self.plug()

    # --- host side: TCP and pty -----------------------------------------------------------
    def plug(self):
        self.plugged = True
        self.listener = lift_socket(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.port = self.listener.getsockname()[1]
        self.listener.listen(8)
        self.listener.setblocking(False)
        self.loop.add_reader(self.listener.fileno(), self._accept)
        master, slave = pty.openpty()
        tty.setraw(slave)
        self.pty_path = os.ttyname(slave)
        os.close(slave)     # hung up until a host process opens the path
        master = lift(master)
        os.set_blocking(master, False)
        self.pty_master = master
        self.pty_attached = False
        if self.tty_link:
            tmp = f"{self.tty_link}.tmp"
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            os.symlink(self.pty_path, tmp)
            os.replace(tmp, self.tty_link)
        self._probe_pty()

    def unplug(self, seconds=None):
        """Drop the host side; with `seconds`, plug back in after that many wall seconds."""
        if self.plugged:
            self.plugged = False
            for sock in list(self.clients):
                self._drop_client(sock)
            self.loop.remove_reader(self.listener.fileno())
            self.listener.close()
            self.listener = None
            self._close_pty()
            self.pty_path = None
        if self._replug_timer:
            self._replug_timer.cancel()
            self._replug_timer = None
        if seconds is not None:
            self._replug_timer = self.loop.call_later(seconds, self._replug)

    def _replug(self):
        self._replug_timer = None
        if not self.plugged:
            try:
                self.plug()
            except OSError:         # the port was taken meanwhile: try again shortly
                self._close_pty()
                if self.listener is not None:
                    self.listener.close()
                    self.listener = None
                self.plugged = False
                self._replug_timer = self.loop.call_later(0.5, self._replug)

    def replug(self):
        if self._replug_timer:
            self._replug_timer.cancel()
        self._replug()

    def _close_pty(self):
        if self._probe_timer:
            self._probe_timer.cancel()
            self._probe_timer = None
        if self.pty_master is not None:
            if self.pty_attached:
                self.loop.remove_reader(self.pty_master)
            os.close(self.pty_master)
            self.pty_master = None
            self.pty_attached = False

    def _probe_pty(self):
        # With no process holding the slave open the master reports HUP; poll for a client
        # instead of spinning on it. A closed slave also means nobody sees board output.
        self._probe_timer = None
        if self.pty_master is None:
            return
        import select
        p = select.poll()
        p.register(self.pty_master, select.POLLIN | select.POLLHUP)
        hup = any(ev & select.POLLHUP for _, ev in p.poll(0))
        if not hup:
            self.pty_attached = True
            self.loop.add_reader(self.pty_master, self._read_pty)
        else:
            self._probe_timer = self.loop.call_later(0.2, self._probe_pty)

    def _read_pty(self):
        try:
            data = os.read(self.pty_master, 4096)
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                return
            data = b""
        if not data:    # EIO: the last host process closed the pty
            self.loop.remove_reader(self.pty_master)
            self.pty_attached = False
            self._probe_timer = self.loop.call_later(0.2, self._probe_pty)
            return
        self._host_input(data)

    def _accept(self):
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        sock = lift_socket(sock)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.clients[sock] = bytearray()
        if not self._host_paused:
            self.loop.add_reader(sock.fileno(), self._read_client, sock)

    def _read_client(self, sock):
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop_client(sock)
            return
        self._host_input(data)

    def _drop_client(self, sock):
        if sock in self.clients:
            del self.clients[sock]
            for remove in (self.loop.remove_reader, self.loop.remove_writer):
                try:
                    remove(sock.fileno())
                except (ValueError, OSError):
                    pass
            sock.close()

    def _flush_client(self, sock):
        buf = self.clients.get(sock)
        if buf is None:
            return
        try:
            n = sock.send(buf)
        except BlockingIOError:
            n = 0
        except OSError:
            self._drop_client(sock)
            return
        del buf[:n]
        if buf:
            self.loop.add_writer(sock.fileno(), self._flush_client, sock)
        else:
            self.loop.remove_writer(sock.fileno())

    def _host_input(self, data):
        self.to_vm += self.noise["rx"].apply(data)
        self._pace_rx()
        if len(self.to_vm) > _RX_HIGH:
            self._pause_host_readers(True)

    def _pause_host_readers(self, pause):
        for sock in self.clients:
            if pause:
                self.loop.remove_reader(sock.fileno())
            else:
                self.loop.add_reader(sock.fileno(), self._read_client, sock)
        if self.pty_attached:
            if pause:
                self.loop.remove_reader(self.pty_master)
            else:
                self.loop.add_reader(self.pty_master, self._read_pty)
        self._host_paused = pause

    def send_to_host(self, data):
        """Deliver board output to every connected host (already paced)."""
        if not data:
            return
        data = self.noise["tx"].apply(data)
        if not self.plugged:
            self.stats["dropped_tx"] += len(data)
            return
        for sock, buf in list(self.clients.items()):
            if len(buf) > _CLIENT_MAX:
                continue
            was_empty = not buf
            buf += data
            if was_empty:
                self._flush_client(sock)
        if self.pty_attached:
            try:
                os.write(self.pty_master, data)
            except OSError:
                self.stats["dropped_tx"] += len(data)

    # --- VM side ----------------------------------------------------------------------------
    def attach_vm(self, fd):
        self.vm_fd = fd
        self.to_vm.clear()      # bytes in flight when the board reset are lost, as on a UART
        self._resume_host()
        self._start_reading_vm()

    def detach_vm(self):
        self._stop_reading_vm()
        self.vm_fd = None
        self.to_vm.clear()
        for timer in (self._rx_timer, self._tx_timer):
            if timer:
                timer.cancel()
        self._rx_timer = self._tx_timer = None
        self._resume_host()

    def _resume_host(self):
        # The backlog that paused the host's readers is gone with the VM: read the host again.
        # (Missed before: a reset under a flood left them paused for good, and the board never
        # heard the host again; the serial tray's Ctrl-C stream test found it.)
        if self._host_paused:
            self._pause_host_readers(False)

    def drain_vm(self):
        """Read whatever the VM wrote before it exited, ignoring the pace (it is gone)."""
        out = bytearray()
        while self.vm_fd is not None:
            try:
                data = os.read(self.vm_fd, 65536)
            except OSError:
                break
            if not data:
                break
            out += data
        return bytes(out)

    def _start_reading_vm(self):
        if self.vm_fd is not None and not self._reading_vm:
            self._reading_vm = True
            self.loop.add_reader(self.vm_fd, self._read_vm)

    def _stop_reading_vm(self):
        if self._reading_vm:
            self._reading_vm = False
            try:
                self.loop.remove_reader(self.vm_fd)
            except (ValueError, OSError):
                pass

    def _read_vm(self):
        allowed = self.tx_pacer.refill()
        if self.tx_unpaced is not None and self.tx_unpaced():
            allowed = 1 << 16
        if allowed < 1:
            self._stop_reading_vm()
            self._tx_timer = self.loop.call_later(self.tx_pacer.delay_for(CHUNK),
                                                  self._resume_tx)
            return
        try:
            data = os.read(self.vm_fd, allowed)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:        # EIO: VM gone; the board notices through its process
            self._stop_reading_vm()
            return
        self.tx_pacer.take(len(data))
        self.stats["tx"] += len(data)
        if self.on_output:
            data = self.on_output(data)
        self.send_to_host(data)

    def _resume_tx(self):
        self._tx_timer = None
        self._start_reading_vm()

    def _pace_rx(self):
        if self._rx_timer or self.vm_fd is None or not self.to_vm:
            return
        allowed = self.rx_pacer.refill()
        if allowed < 1:
            self._rx_timer = self.loop.call_later(
                self.rx_pacer.delay_for(min(CHUNK, len(self.to_vm))), self._rx_step)
            return
        chunk = bytes(self.to_vm[:allowed])
        written = self._write_vm(chunk)
        del self.to_vm[:written]
        self.rx_pacer.take(written)
        self.stats["rx"] += written
        if written and self.on_delivered:
            self.on_delivered()
        if self._host_paused and len(self.to_vm) < _RX_HIGH // 4:
            self._pause_host_readers(False)
        if self.to_vm:
            # a short write means the VM is not reading (its pty is full): back off
            delay = 0.01 if written < len(chunk) else \
                self.rx_pacer.delay_for(min(CHUNK, len(self.to_vm)))
            self._rx_timer = self.loop.call_later(delay, self._rx_step)

    def _rx_step(self):
        self._rx_timer = None
        self._pace_rx()

    def _write_vm(self, data):
        """Write to the VM; a 0x03 the VM would take as Ctrl-C becomes a SIGINT instead.

        Why: the VM's pty is raw (no ISIG) so frames pass untouched, and a real port raises
        KeyboardInterrupt on 0x03 only while micropython.kbd_intr(3) is armed, which the
        board can tell from the VM's SIGINT handler (see Board.interrupt)."""
        done = 0
        while done < len(data):
            cut = data.find(b"\x03", done)
            end = len(data) if cut < 0 else cut
            if end > done:
                n = self._os_write(data[done:end])
                if n is None:
                    return len(data)
                done += n
                if done < end:
                    return done
                continue
            if self.on_interrupt and self.on_interrupt():
                done += 1
                continue
            n = self._os_write(b"\x03")
            if n is None:
                return len(data)
            if not n:
                return done
            done += n
        return done

    def _os_write(self, data):
        try:
            return os.write(self.vm_fd, data)
        except BlockingIOError:
            return 0
        except OSError:
            return None     # VM gone: the bytes are lost

    def close(self):
        self.detach_vm()
        self.unplug()
        if self.tty_link:
            try:
                os.unlink(self.tty_link)
            except FileNotFoundError:
                pass
