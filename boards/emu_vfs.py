# The emulated board's `vfs` module: the unix port's, except that the mount table leaves out
# /.frozen. That folder holds the firmware image, which on a board is frozen into the program
# flash and is no filesystem, so `mpremote df` printed the host disk for it. It stays
# mounted (imports need it); os.listdir("/") still shows it (docs/emulator.md).
import vfs as _vfs

VfsPosix = _vfs.VfsPosix
umount = _vfs.umount
_ROM = "/.frozen"


def mount(*args, **kw):
    if args or kw:
        return _vfs.mount(*args, **kw)
    return [m for m in _vfs.mount() if m[1] != _ROM]
