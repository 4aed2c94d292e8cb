"""`edgekit flash` on a board whose image freezes the firmware (edgekit build-image).

The frozen modules come before /lib on the port's sys.path, so a /lib copy of one would never
run: flash installs only what the image does not freeze (boot.py, main.py, board.json, and
any module the image lacks). A bundle whose code differs from the frozen firmware is refused:
the board would run the frozen code while the registry believed the bundle's, so the image
must be rebuilt from the same sources (or the matching bundle flashed).
"""
import copy

from edgekit.flash.device import TargetError

# Modules an image carries for itself: the frozen ones answer for the board (its identity,
# its HAL alias), whatever the bundle's copies hold.
_IMAGE_OWN = ("build_info", "frozen_fw")
_HAL = ("hal", "hal_common", "hal_machine", "hal_net", "rc522")


def split(image, frozen: dict):
    """(image to install, report) for a device whose probe found `frozen` firmware.
    TargetError when the frozen firmware is not the bundle's."""
    if image.kind not in (frozen.get("kinds") or []):
        raise TargetError(f"the board's image freezes firmware for {frozen.get('kinds')}, "
                          f"not {image.kind}: build its image for {image.kind} (edgekit "
                          f"build-image --board {image.board} --kind {image.kind})")
    table = frozen.get("modules") or {}
    skip, differ = [], []
    for f in image.files:
        m = f.module
        if m is None:
            continue
        if m in _IMAGE_OWN or (frozen.get("hal") and m in _HAL):
            skip.append(f.path)
        elif m in table:
            (skip if f.digest.hex()[:16] == table[m] else differ).append(f.path)
    if differ:
        names = ", ".join(p.rsplit("/", 1)[-1] for p in differ[:8])
        more = f" and {len(differ) - 8} more" if len(differ) > 8 else ""
        raise TargetError(f"the board's image freezes firmware {frozen.get('version')} whose "
                          f"code differs from this bundle ({image.version}) in {names}{more}: "
                          f"flash the bundle built from the image's sources, or rebuild the "
                          f"image from this tree (edgekit build-image --board {image.board} "
                          f"--kind {image.kind})")
    boot = image.boot_modules()
    slim = copy.copy(image)
    slim.files = [f for f in image.files if f.path not in skip]
    slim.boot_modules = lambda: boot        # the load check imports the frozen ones
    report = {"found": True, "version": frozen.get("version"), "kinds": frozen.get("kinds"),
              "frozen_modules": len(table), "not_installed": len(skip),
              "installed": [f.path for f in slim.files]}
    return slim, report
