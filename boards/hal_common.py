# Hardware-free parts shared by every HAL (hal_esp32, hal_rp2040, hal_emu): tick arithmetic,
# debounced pulse counting, ADC scaling, sensor frame decoding, the plain flash seam and the
# stdio link. Kept free of `machine` so the unix VM unit-tests exactly what boards run.
import os
import select
import sys

from micropython import const

# MicroPython's ticks_ms() wraps at 2**30 on every port; the emulator HAL wraps the same way
# so firmware meets the wrap in simulation (after 12.4 simulated days) before the field does.
TICKS_PERIOD = const(0x40000000)
_TICKS_MASK = const(0x3FFFFFFF)
_TICKS_HALF = const(0x20000000)

RESET_CAUSES = ("power_on", "soft", "hard", "watchdog", "deepsleep", "brownout")


class HalError(OSError):
    """A peripheral failed (I2C NACK, timeout, unknown role); firmware reports E_HARDWARE."""


def ticks_add(a, b):
    return (a + b) & _TICKS_MASK


def ticks_diff(a, b):
    return ((a - b + _TICKS_HALF) & _TICKS_MASK) - _TICKS_HALF


def role(board, name, mode):
    """The pin entry of role `name`, checked to be of `mode` ("pulse", "in", "out", "adc")."""
    pins = board.get("pins", {})
    entry = pins.get(name)
    if entry is None:
        raise HalError("board %s has no pin role %r; roles: %s"
                       % (board.get("name"), name, ", ".join(sorted(pins))))
    if entry.get("mode") != mode:
        raise HalError("pin role %r of board %s is %r, not %r"
                       % (name, board.get("name"), entry.get("mode"), mode))
    return entry


class Debouncer:
    """Counts an edge only if `debounce_ms` passed since the last counted one.

    Called from a pin IRQ: integer-only, allocates nothing. Why debounce at all: reed and
    hall flow sensors chatter for ~1 ms per pulse; counting chatter overbills the customer.
    """

    def __init__(self, debounce_ms):
        self.debounce_ms = debounce_ms
        self.count = 0
        self.rejected = 0
        self._last = None

    def edge(self, now_ms):
        last = self._last
        if last is not None and ticks_diff(now_ms, last) < self.debounce_ms:
            self.rejected += 1
            return False
        self._last = now_ms
        self.count += 1
        return True

    def value(self):
        return self.count


def adc_mv(raw, raw_full_scale, vref_mv, divider=1.0):
    """Millivolts at the divider's input from a raw ADC reading (clamped to the scale)."""
    if raw < 0:
        raw = 0
    elif raw > raw_full_scale:
        raw = raw_full_scale
    return int(raw * vref_mv * divider / raw_full_scale + 0.5)


def _crc8_sht(data):
    # Sensirion CRC-8: poly 0x31, init 0xFF (SHT3x datasheet section 4.12).
    crc = 0xFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def sht31_decode(buf):
    """{"temp_c", "rh"} from the 6-byte SHT3x measurement; HalError on a CRC mismatch."""
    if len(buf) != 6:
        raise HalError("sht31: expected 6 bytes, got %d" % len(buf))
    if _crc8_sht(buf[0:2]) != buf[2] or _crc8_sht(buf[3:5]) != buf[5]:
        raise HalError("sht31: CRC mismatch (bus noise or loose wire)")
    t = (buf[0] << 8) | buf[1]
    h = (buf[3] << 8) | buf[4]
    return {"temp_c": round(-45 + 175 * t / 65535, 2), "rh": round(100 * h / 65535, 2)}


def sht31_limit(temp_c, rh):
    """The 3-byte payload of an SHT3x alert-limit write (datasheet, "alert mode"): the 7 most
    significant bits of the RH word and the 9 of the temperature word, then the CRC."""
    t = int((min(130.0, max(-45.0, temp_c)) + 45) * 65535 / 175 + 0.5)
    h = int(min(100.0, max(0.0, rh)) * 65535 / 100 + 0.5)
    word = (h & 0xFE00) | (t >> 7)
    data = bytes(((word >> 8) & 0xFF, word & 0xFF))
    return data + bytes((_crc8_sht(data),))


# SHT3x alert-limit write commands: high set, high clear, low clear, low set.
SHT31_ALERT_CMDS = (b"\x61\x1d", b"\x61\x16", b"\x61\x0b", b"\x61\x00")
SHT31_ALERT_HYST_C = 2.0        # the alert clears this far below the set point


def sht31_alert_writes(high_c):
    """(command, payload) writes that make ALERT go high at `high_c` and only there: humidity
    limits wide open (100 %) and the low limits at the bottom of the range, so a frosty night
    does not wake the board."""
    return ((SHT31_ALERT_CMDS[0], sht31_limit(high_c, 100.0)),
            (SHT31_ALERT_CMDS[1], sht31_limit(high_c - SHT31_ALERT_HYST_C, 100.0)),
            (SHT31_ALERT_CMDS[2], sht31_limit(-45.0, 0.0)),
            (SHT31_ALERT_CMDS[3], sht31_limit(-45.0, 0.0)))


def a02yyuw_decode(buf):
    """Distance in mm from the 4-byte A02YYUW ultrasonic frame FF H L SUM."""
    if len(buf) != 4 or buf[0] != 0xFF:
        raise HalError("a02yyuw: bad frame header")
    if (buf[0] + buf[1] + buf[2]) & 0xFF != buf[3]:
        raise HalError("a02yyuw: checksum mismatch")
    return (buf[1] << 8) | buf[2]


def pms5003_decode(buf):
    """{"pm1", "pm25", "pm10"} (ug/m3, atmospheric) from a 32-byte PMS5003 frame."""
    if len(buf) != 32 or buf[0] != 0x42 or buf[1] != 0x4D:
        raise HalError("pms5003: bad frame header")
    if sum(buf[0:30]) & 0xFFFF != (buf[30] << 8) | buf[31]:
        raise HalError("pms5003: checksum mismatch")
    return {"pm1": (buf[10] << 8) | buf[11], "pm25": (buf[12] << 8) | buf[13],
            "pm10": (buf[14] << 8) | buf[15]}


def _s16(hi, lo):
    v = (hi << 8) | lo
    return v - 0x10000 if v & 0x8000 else v


def ina219_decode(shunt, bus, shunt_mohm):
    """{"mv", "ma"} from the INA219's shunt (reg 1) and bus (reg 2) registers, 2 bytes each
    big-endian (datasheet SBOS448: shunt LSB 10 uV signed; bus bits 15..3, LSB 4 mV).
    Current is + into the battery (charging) as the shunt is wired on the carrier."""
    if len(shunt) != 2 or len(bus) != 2:
        raise HalError("ina219: expected 2-byte registers")
    if bus[1] & 0x01:
        raise HalError("ina219: math overflow (OVF): current beyond the shunt's range")
    shunt_uv = _s16(shunt[0], shunt[1]) * 10
    mv = (((bus[0] << 8) | bus[1]) >> 3) * 4
    return {"mv": mv, "ma": int(shunt_uv / shunt_mohm)}


def ads1115_mv(raw, fsr_mv=4096):
    """Millivolts from a 2-byte ADS1115 conversion register (PGA full scale `fsr_mv`)."""
    if len(raw) != 2:
        raise HalError("ads1115: expected a 2-byte conversion register")
    return _s16(raw[0], raw[1]) * fsr_mv // 32768


class Flash:
    """Plain flash seam: every persistent write of the firmware goes through one of these.

    write, rename and remove each count one operation (each is at least one littlefs
    metadata commit); the emulator's subclass can cut the power during any of them.
    """

    def __init__(self):
        self.writes = 0

    def write(self, f, data):
        self.writes += 1
        n = f.write(data)
        if n is not None and n != len(data):
            raise OSError(28, "short write: flash full? free space and retry")

    def rename(self, src, dst):
        self.writes += 1
        os.rename(src, dst)

    def remove(self, path):
        self.writes += 1
        os.remove(path)


class StdioLink:
    """The board's UART/USB link as MicroPython's stdin/stdout, binary-safe.

    Reads are byte-wise behind poll(): a MicroPython stream read(n) blocks until n bytes
    arrive.
    """

    def __init__(self, stdin=None, stdout=None):
        self._in = stdin or sys.stdin.buffer
        self._out = stdout or sys.stdout.buffer
        self._poll = select.poll()
        self._poll.register(stdin or sys.stdin, select.POLLIN)
        self._one = bytearray(1)

    def any(self):
        for _, ev in self._poll.poll(0):
            if ev & select.POLLIN:
                return True
        return False

    def poll_ms(self, ms):
        """True as soon as input is waiting, False after `ms` without any."""
        for _, ev in self._poll.poll(ms):
            if ev & select.POLLIN:
                return True
        return False

    def readinto(self, buf):
        """Non-blocking; stops right after a 0x03 byte so that whatever follows an
        interrupt request (mpremote's "\r\x01") stays in the link for the REPL, however
        large the caller's buffer. 0x03 never occurs inside a frame (SPEC section 2)."""
        n = 0
        one = self._one
        size = len(buf)
        while n < size and self.any():
            if not self._in.readinto(one):
                break
            buf[n] = one[0]
            n += 1
            if one[0] == 0x03:
                break
        return n

    def read(self, n):
        buf = bytearray(n)
        got = self.readinto(buf)
        return bytes(buf[:got]) if got else None

    def write(self, data):
        self._out.write(data)


# --- the firmware's own record of why it reset ----------------------------------------------
# Some hardware reset causes are ambiguous: the RP2040 resets through its watchdog, so
# machine.reset() and a deep-sleep wake both read as WDT_RESET; on ESP32 HARD_RESET is both
# machine.reset() and a panic. So the HAL writes one small record just before it resets the
# board itself, and the next boot reads it, trusting it only where the hardware's cause is
# one the record can explain (a power-on never can: a record left by a cut supply is stale).
RESET_RECORD = "/.reset"
_REASON_MAX = const(32)


class ResetRecord:
    """`cause reason` in one small file, replaced atomically (write a temp file, rename):
    a power cut leaves either the old record or the new one, never half of one."""

    def __init__(self, flash, path=RESET_RECORD):
        self.flash = flash
        self.path = path

    def write(self, cause, reason=None):
        text = cause if not reason else "%s %s" % (cause, str(reason)[:_REASON_MAX])
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            self.flash.write(f, text.encode())
        self.flash.rename(tmp, self.path)

    def take(self):
        """(cause, reason or None) of the record, removed so that it explains one boot
        only; None if there is none."""
        try:
            with open(self.path, "rb") as f:
                text = f.read(_REASON_MAX + 16).decode()
        except (OSError, UnicodeError):
            return None
        try:
            self.flash.remove(self.path)
        except OSError:
            pass
        cause, _, reason = text.partition(" ")
        if cause not in RESET_CAUSES:
            return None
        return cause, (reason or None)


def resolve_cause(hw_cause, explainable, record):
    """The reset cause to report: the record's where the hardware's cause is one of
    `explainable` (the causes a firmware-initiated reset shows as on this port)."""
    if record is not None and hw_cause in explainable:
        return record[0]
    return hw_cause


# --- time asleep and awake ------------------------------------------------------------------
# After link input the board stays awake (polling) this long before it sleeps again: a
# light sleep loses the UART bytes that wake it, and the host resends an unanswered request
# after 5 s (SPEC 8.1, host session timeout), so the resend finds the board awake.
LINK_LINGER_MS = const(12000)


class PowerAccount:
    """What the battery estimate needs, measured on the board's own clock: time spent in
    light sleep, how many sleeps, how many ended early (a wake source or the link). Time is
    summed per step (`advance`), so it survives the 2**30 ms wrap of ticks."""

    def __init__(self, now_ms):
        self._last = now_ms
        self.elapsed_ms = 0
        self.asleep_ms = 0
        self.sleeps = 0
        self.early = 0
        self.link_at = None     # ticks of the last link activity (None: none yet)

    def advance(self, now_ms):
        d = ticks_diff(now_ms, self._last)
        if d > 0:
            self.elapsed_ms += d
        self._last = now_ms

    def slept(self, asked_ms, got_ms):
        self.sleeps += 1
        self.asleep_ms += max(0, got_ms)
        if got_ms < asked_ms:
            self.early += 1

    def link_seen(self, now_ms):
        self.link_at = now_ms

    def linger_left(self, now_ms):
        """ms the board still stays awake after link activity (0: it may sleep)."""
        if self.link_at is None:
            return 0
        return max(0, LINK_LINGER_MS - ticks_diff(now_ms, self.link_at))

    def lingering(self, now_ms):
        return self.linger_left(now_ms) > 0

    def stats(self, now_ms):
        self.advance(now_ms)
        return {"elapsed_ms": self.elapsed_ms, "asleep_ms": self.asleep_ms,
                "awake_ms": max(0, self.elapsed_ms - self.asleep_ms), "sleeps": self.sleeps,
                "early_wakes": self.early}
