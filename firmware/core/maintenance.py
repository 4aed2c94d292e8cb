# Who may reach the REPL of a provisioned device (SPEC 12).
#
# The link carries frames and, on a real board, MicroPython's REPL: whoever reaches the REPL
# reads the device's private seed and drives its outputs. So a provisioned device treats the
# interrupt pair 0D 03 as framing noise (counted in `diag`, never obeyed) unless maintenance
# is open:
#   - by an operator-signed COMMAND "maintenance" {minutes, device}: replay-protected like
#     every signed request, bound to this device's id (a copy sent to another device is
#     refused), for 1..MAX_MINUTES minutes, logged in the device's log journal;
#   - by the board's maintenance strap (pin role `maint_strap`, held active at boot): for
#     the manufacturer's bench, logged too. A board definition without that role has none.
# A factory-state device keeps the REPL: flashing and provisioning need it.
#
# Once the device has dropped to the REPL, the window still ends on time: the HAL's guard
# (`hal.maintenance_guard`) keeps the watchdog fed until the deadline and then resets the
# board, which boots back into the locked firmware. The deadline is saved (record `maint`)
# so that boot.py re-arms the guard after a raw-REPL soft reboot (what mpremote does on
# connect), where timers are gone and main.py does not run.
import gc
import struct

import catalog as C

MAX_MINUTES = 60
RECORD = "maint"
_STRAP = "maint_strap"


def strap_held(hal):
    """The manufacturer's physical alternative: the strap pin, read through the HAL."""
    if _STRAP not in hal.BOARD.get("pins", {}):
        return False
    try:
        return bool(hal.input(_STRAP))
    except Exception:  # noqa: B902 - a strap that cannot be read is not held
        return False


class Gate:
    def __init__(self, rt):
        self.rt = rt
        self.hal = rt.hal
        self.until = None       # ticks_ms deadline of an open window
        self.refused = 0        # interrupts ignored while locked (diag)
        self.strap = False
        store = rt.dev.store
        if store.exists(RECORD):
            # The firmware is running again, so any earlier REPL session is over: a reset
            # (or a soft reboot into main.py) ends maintenance.
            store.delete(RECORD)
            self.hal.maintenance_guard(0)
        if rt.dev.provisioned and strap_held(self.hal):
            self.strap = True
            rt.log("maintenance strap held at boot: REPL open for this boot", 2)

    @property
    def locked(self):
        if not self.rt.dev.provisioned or self.strap:
            return False
        return self.remaining_ms() <= 0

    def remaining_ms(self):
        if self.until is None:
            return 0
        return self.hal.ticks_diff(self.until, self.hal.ticks_ms())

    def open(self, msg, args):
        """COMMAND maintenance: open the window; refuses anything not meant for this device."""
        from agent import refuse
        minutes = args.get("minutes")
        if args.get("device") != self.rt.dev.device_id:
            refuse(C.E_BAD_REQUEST, "maintenance names another device id")
        if not isinstance(minutes, int) or isinstance(minutes, bool) or \
                not 1 <= minutes <= MAX_MINUTES:
            refuse(C.E_BAD_REQUEST, "minutes must be 1..%d" % MAX_MINUTES)
        self.until = self.hal.ticks_add(self.hal.ticks_ms(), minutes * 60000)
        self.rt.log("maintenance opened for %d min by %s" % (minutes, msg.sender), 2)
        return {"minutes": minutes, "seconds": minutes * 60}

    def interrupt(self):
        """0D 03 seen on the link: drop to the REPL if allowed, else count and ignore."""
        if self.locked:
            self.refused += 1
            return
        # The firmware is about to stop: its garbage goes first, so that the log line and the
        # record below cannot fail for want of a block (the REPL would then never open).
        gc.collect()
        if self.rt.dev.provisioned:
            ms = self.remaining_ms() if not self.strap else MAX_MINUTES * 60000
            self.rt.log("maintenance: REPL entered (%d s left)" % (ms // 1000), 2)
            save(self.rt.dev.store, self.hal.ticks_add(self.hal.ticks_ms(), ms))
            self.hal.maintenance_guard(ms)
        raise KeyboardInterrupt


# The record is raw bytes (a ticks_ms deadline), not CBOR: boot.py reads it with nothing
# but the store module loaded.
def save(store, until):
    store.save_bytes(RECORD, struct.pack("<I", until))


def rearm(hal, store):
    """boot.py: a soft reboot inside a maintenance session keeps its deadline (and the
    watchdog fed until then); no record, or one past its deadline, arms nothing."""
    try:
        data = store.load_bytes(RECORD)
    except Exception:  # noqa: B902 - a damaged record opens nothing
        data = None
    if data is None or len(data) != 4:
        return
    left = hal.ticks_diff(struct.unpack("<I", data)[0], hal.ticks_ms())
    if left > MAX_MINUTES * 60000:
        left = 0            # a deadline from before a hard reset: ticks started again
    if left > 0:
        hal.maintenance_guard(left)
    else:
        store.delete(RECORD)
