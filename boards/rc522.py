# MFRC522 (NXP) contactless reader over SPI: the UID of an ISO 14443-A card (Mifare) in the
# field, for the water ATM's card_uid(). Only what reading a UID needs: REQA, then the
# cascade-level-1 anticollision (4-byte UID + BCC). Registers and commands: NXP MFRC522
# datasheet rev. 3.9, sections 9 and 10; the card side: ISO/IEC 14443-3 6.4.
# tests/firmware/shims/common/rc522_twin.py is its twin, written from the same sections.
from micropython import const

_COMMAND = const(0x01)
_COM_IRQ = const(0x04)
_ERROR = const(0x06)
_FIFO_DATA = const(0x09)
_FIFO_LEVEL = const(0x0A)
_CONTROL = const(0x0C)
_BIT_FRAMING = const(0x0D)
_MODE = const(0x11)
_TX_CONTROL = const(0x14)
_TX_ASK = const(0x15)
_T_MODE = const(0x2A)
_T_PRESCALER = const(0x2B)
_T_RELOAD_H = const(0x2C)
_T_RELOAD_L = const(0x2D)
_VERSION = const(0x37)
_IDLE = const(0x00)
_TRANSCEIVE = const(0x0C)
_SOFT_RESET = const(0x0F)
_REQA = const(0x26)
_SEL_CL1 = const(0x93)
_IRQ_DONE = const(0x30)     # RxIRq | IdleIRq
_IRQ_TIMER = const(0x01)
_ERR_MASK = const(0x1B)     # BufferOvfl | ParityErr | ProtocolErr | CollErr
_POLLS = const(200)


class Rc522:
    """`spi`: a machine.SPI in mode 0; `cs`: the chip-select Pin, an output idling high."""

    def __init__(self, spi, cs):
        self.spi = spi
        self.cs = cs
        self._a = bytearray(1)
        self._w = bytearray(2)
        self._write(_COMMAND, _SOFT_RESET)
        v = self._read(_VERSION)
        if v in (0x00, 0xFF):
            raise OSError("no MFRC522 answers on the SPI bus (version register 0x%02x)" % v)
        self.version = v
        # The timer ends a transceive that no card answers: 25 ms (TPrescaler 0x3E, reload
        # 30), started automatically at the end of each transmission (TAuto).
        self._write(_T_MODE, 0x8D)
        self._write(_T_PRESCALER, 0x3E)
        self._write(_T_RELOAD_L, 30)
        self._write(_T_RELOAD_H, 0)
        self._write(_TX_ASK, 0x40)          # 100% ASK, as ISO 14443-A needs
        self._write(_MODE, 0x3D)            # CRC preset 0x6363 (ISO 14443-3 6.2.4)
        self._write(_TX_CONTROL, self._read(_TX_CONTROL) | 0x03)   # antenna on

    def _write(self, reg, value):
        w = self._w
        w[0] = (reg << 1) & 0x7E
        w[1] = value
        self.cs.value(0)
        self.spi.write(w)
        self.cs.value(1)

    def _read(self, reg):
        a = self._a
        a[0] = ((reg << 1) & 0x7E) | 0x80
        self.cs.value(0)
        self.spi.write(a)
        self.spi.readinto(a)
        self.cs.value(1)
        return a[0]

    def _transceive(self, data, last_bits):
        self._write(_COMMAND, _IDLE)
        self._write(_COM_IRQ, 0x7F)         # clear every request bit
        self._write(_FIFO_LEVEL, 0x80)      # flush the FIFO
        for b in data:
            self._write(_FIFO_DATA, b)
        self._write(_COMMAND, _TRANSCEIVE)
        self._write(_BIT_FRAMING, 0x80 | last_bits)     # StartSend
        irq = 0
        for _ in range(_POLLS):
            irq = self._read(_COM_IRQ)
            if irq & (_IRQ_DONE | _IRQ_TIMER):
                break
        self._write(_BIT_FRAMING, last_bits)
        if not irq & _IRQ_DONE or irq & _IRQ_TIMER or self._read(_ERROR) & _ERR_MASK:
            return None                     # no card, or a garbled answer: try next poll
        n = self._read(_FIFO_LEVEL)
        return bytes(self._read(_FIFO_DATA) for _ in range(n))

    def uid(self):
        """The 4-byte UID of the card in the field, or None."""
        # A card left READY by the last poll ignores one REQA and drops back to IDLE, so a
        # second REQA reaches it (ISO 14443-3 6.4.2).
        for _ in range(2):
            if self._transceive(bytes((_REQA,)), 7) is not None:      # short frame, 7 bits
                break
        else:
            return None
        ans = self._transceive(bytes((_SEL_CL1, 0x20)), 0)
        if ans is None or len(ans) != 5:
            return None
        if ans[0] ^ ans[1] ^ ans[2] ^ ans[3] != ans[4]:    # BCC: a collision or a bad read
            return None
        return ans[:4]


def open_reader(board):
    """The reader a board definition names (`card_reader`: part, bus; the bus's pins)."""
    import machine
    spec = board["card_reader"]
    if spec.get("part") != "rc522":
        raise OSError("card reader %s has no driver in this HAL" % spec.get("part"))
    bus = board["buses"][spec["bus"]]
    # SPI mode 0, MSB first, as the MFRC522 speaks it (datasheet 8.1.2); 1 MHz leaves
    # margin on a carrier's wiring (the part takes up to 10 MHz).
    spi = machine.SPI(int(spec["bus"][-1]), baudrate=bus.get("freq", 1000000), polarity=0,
                      phase=0, sck=machine.Pin(bus["sck"]), mosi=machine.Pin(bus["mosi"]),
                      miso=machine.Pin(bus["miso"]))
    cs = machine.Pin(spec.get("cs", bus["cs"]), machine.Pin.OUT, value=1)
    return Rc522(spi, cs)
