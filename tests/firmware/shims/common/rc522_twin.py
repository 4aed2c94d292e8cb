# The MFRC522's twin for the strict port shims: the chip's registers as its datasheet
# describes them (NXP MFRC522 rev. 3.9, sections 9 and 10) and one ISO 14443-A card in the
# field (ISO/IEC 14443-3 6.4), behind machine.SPI. Written from those documents, not from
# boards/rc522.py: the driver must work against the chip, not against itself.
#
#   import rc522_twin
#   rc522_twin.chip.card = b"\xde\xad\xbe\xef"    # a card in the field (None: none)

_COMMAND, _COM_IRQ, _ERROR, _FIFO_DATA, _FIFO_LEVEL = 0x01, 0x04, 0x06, 0x09, 0x0A
_CONTROL, _BIT_FRAMING, _TX_CONTROL, _VERSION = 0x0C, 0x0D, 0x14, 0x37
_IDLE, _TRANSCEIVE, _SOFT_RESET = 0x00, 0x0C, 0x0F


class Chip:
    def __init__(self):
        self.card = None
        self.card_state = "idle"        # ISO 14443-3: idle -> ready (REQA) -> ...
        self.log = []
        self.reset()

    def reset(self):
        self.regs = bytearray(0x40)
        self.regs[_VERSION] = 0x92      # MFRC522 version 2.0
        self.regs[0x2A] = 0x00
        self.fifo = []
        self.command = _IDLE

    def write(self, reg, value):
        if reg == _COMMAND:
            self.command = value & 0x0F
            if self.command == _SOFT_RESET:
                self.reset()
            return
        if reg == _COM_IRQ:
            # Set1 (bit 7) 0: the marked bits are cleared (datasheet 9.3.1.5).
            if value & 0x80:
                self.regs[reg] |= value & 0x7F
            else:
                self.regs[reg] &= ~value & 0x7F
            return
        if reg == _FIFO_LEVEL:
            if value & 0x80:            # FlushBuffer
                self.fifo = []
            return
        if reg == _FIFO_DATA:
            self.fifo.append(value)
            return
        self.regs[reg] = value
        if reg == _BIT_FRAMING and value & 0x80 and self.command == _TRANSCEIVE:
            self._transceive(value & 0x07)

    def read(self, reg):
        if reg == _FIFO_LEVEL:
            return len(self.fifo)
        if reg == _FIFO_DATA:
            return self.fifo.pop(0) if self.fifo else 0
        return self.regs[reg]

    def _transceive(self, last_bits):
        sent = bytes(self.fifo)
        self.fifo = []
        self.log.append((sent, last_bits))
        answer = None
        antenna = self.regs[_TX_CONTROL] & 0x03 == 0x03
        if antenna and self.card is not None:
            if sent == b"\x26" and last_bits == 7:
                if self.card_state == "idle":
                    self.card_state = "ready"
                    answer = b"\x04\x00"            # ATQA: single-size UID, bit frame
                else:                               # not for a READY card: back to IDLE
                    self.card_state = "idle"
            elif sent == b"\x93\x20" and last_bits == 0 and self.card_state == "ready":
                uid = bytes(self.card)
                answer = uid + bytes((uid[0] ^ uid[1] ^ uid[2] ^ uid[3],))
            else:
                self.card_state = "idle"
        if answer is None:
            self.regs[_COM_IRQ] |= 0x01             # TimerIRq: nobody answered in time
        else:
            self.fifo = list(answer)
            self.regs[_COM_IRQ] |= 0x30             # RxIRq | IdleIRq
        self.command = _IDLE


chip = Chip()


class SPI:
    """machine.SPI as the ports define it, wired to the twin: the first byte of a
    transaction addresses a register (bit 7: read), as the MFRC522 frames it (8.1.2.3)."""

    def __init__(self, id, baudrate=1000000, *, polarity=0, phase=0, sck=None, mosi=None,
                 miso=None, **kw):
        if polarity or phase:
            raise ValueError("the MFRC522 speaks SPI mode 0")
        self._addr = None

    def write(self, buf):
        buf = bytes(buf)
        a = buf[0]
        reg = (a >> 1) & 0x3F
        if a & 0x80:
            self._addr = reg                        # the read follows
            return
        for v in buf[1:]:
            chip.write(reg, v)

    def readinto(self, buf, write=0x00):
        for i in range(len(buf)):
            buf[i] = chip.read(self._addr)

    def read(self, n, write=0x00):
        b = bytearray(n)
        self.readinto(b)
        return bytes(b)
