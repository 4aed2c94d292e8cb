# SHA-512 (FIPS 180-4) for Ed25519 on devices. MicroPython's hashlib has no sha512 on the
# unix, ESP32 and RP2040 ports, so this uses hashlib.sha512 where a port has it and the pure
# implementation below everywhere else.
#
# Why 32-bit halves: a 64-bit word does not fit a MicroPython small int (62 bits on 64-bit
# ports), so 64-bit arithmetic allocates a bignum per operation. Each word is kept as a
# (high, low) pair of 32-bit small ints instead: ~5x faster than 64-bit ints in the
# unix VM. Shifted intermediates stay below 2**62 (left shifts are at most 30 bits; rotr 1
# masks its one wrapping bit first), and carries out of the low half are added once per sum.
# On 31-bit small-int ports (ESP32) the halves are bignums again; see bench/bench_ed25519.py.
import struct

try:
    from hashlib import sha512 as _native
except ImportError:
    _native = None

_M32 = 0xFFFFFFFF

# Round constants as (high, low) halves, interleaved: _K[2t] is K[t] >> 32, _K[2t+1] its low half.
_K = (
    0x428a2f98, 0xd728ae22, 0x71374491, 0x23ef65cd, 0xb5c0fbcf, 0xec4d3b2f, 0xe9b5dba5, 0x8189dbbc,
    0x3956c25b, 0xf348b538, 0x59f111f1, 0xb605d019, 0x923f82a4, 0xaf194f9b, 0xab1c5ed5, 0xda6d8118,
    0xd807aa98, 0xa3030242, 0x12835b01, 0x45706fbe, 0x243185be, 0x4ee4b28c, 0x550c7dc3, 0xd5ffb4e2,
    0x72be5d74, 0xf27b896f, 0x80deb1fe, 0x3b1696b1, 0x9bdc06a7, 0x25c71235, 0xc19bf174, 0xcf692694,
    0xe49b69c1, 0x9ef14ad2, 0xefbe4786, 0x384f25e3, 0x0fc19dc6, 0x8b8cd5b5, 0x240ca1cc, 0x77ac9c65,
    0x2de92c6f, 0x592b0275, 0x4a7484aa, 0x6ea6e483, 0x5cb0a9dc, 0xbd41fbd4, 0x76f988da, 0x831153b5,
    0x983e5152, 0xee66dfab, 0xa831c66d, 0x2db43210, 0xb00327c8, 0x98fb213f, 0xbf597fc7, 0xbeef0ee4,
    0xc6e00bf3, 0x3da88fc2, 0xd5a79147, 0x930aa725, 0x06ca6351, 0xe003826f, 0x14292967, 0x0a0e6e70,
    0x27b70a85, 0x46d22ffc, 0x2e1b2138, 0x5c26c926, 0x4d2c6dfc, 0x5ac42aed, 0x53380d13, 0x9d95b3df,
    0x650a7354, 0x8baf63de, 0x766a0abb, 0x3c77b2a8, 0x81c2c92e, 0x47edaee6, 0x92722c85, 0x1482353b,
    0xa2bfe8a1, 0x4cf10364, 0xa81a664b, 0xbc423001, 0xc24b8b70, 0xd0f89791, 0xc76c51a3, 0x0654be30,
    0xd192e819, 0xd6ef5218, 0xd6990624, 0x5565a910, 0xf40e3585, 0x5771202a, 0x106aa070, 0x32bbd1b8,
    0x19a4c116, 0xb8d2d0c8, 0x1e376c08, 0x5141ab53, 0x2748774c, 0xdf8eeb99, 0x34b0bcb5, 0xe19b48a8,
    0x391c0cb3, 0xc5c95a63, 0x4ed8aa4a, 0xe3418acb, 0x5b9cca4f, 0x7763e373, 0x682e6ff3, 0xd6b2b8a3,
    0x748f82ee, 0x5defb2fc, 0x78a5636f, 0x43172f60, 0x84c87814, 0xa1f0ab72, 0x8cc70208, 0x1a6439ec,
    0x90befffa, 0x23631e28, 0xa4506ceb, 0xde82bde9, 0xbef9a3f7, 0xb2c67915, 0xc67178f2, 0xe372532b,
    0xca273ece, 0xea26619c, 0xd186b8c7, 0x21c0c207, 0xeada7dd6, 0xcde0eb1e, 0xf57d4f7f, 0xee6ed178,
    0x06f067aa, 0x72176fba, 0x0a637dc5, 0xa2c898a6, 0x113f9804, 0xbef90dae, 0x1b710b35, 0x131c471b,
    0x28db77f5, 0x23047d84, 0x32caab7b, 0x40c72493, 0x3c9ebe0a, 0x15c9bebc, 0x431d67c4, 0x9c100d4c,
    0x4cc5d4be, 0xcb3e42b6, 0x597f299c, 0xfc657e2a, 0x5fcb6fab, 0x3ad6faec, 0x6c44198c, 0x4a475817,
)

_H0 = (
    0x6a09e667, 0xf3bcc908, 0xbb67ae85, 0x84caa73b, 0x3c6ef372, 0xfe94f82b, 0xa54ff53a, 0x5f1d36f1,
    0x510e527f, 0xade682d1, 0x9b05688c, 0x2b3e6c1f, 0x1f83d9ab, 0xfb41bd6b, 0x5be0cd19, 0x137e2179,
)


def _compress(h, wh, wl, block, off):
    """Fold the 128-byte block at block[off:] into the state h (16 halves, updated in place).

    wh/wl are the caller's 16-slot rings for the message schedule (high and low halves):
    W[t] only needs W[t-16..t-1], and small lists keep every allocation of a hash below
    300 bytes, which a fragmented board heap can still serve."""
    M = _M32
    K = _K
    for j in range(16):
        wh[j], wl[j] = struct.unpack_from(">II", block, off + 8 * j)
    ah, al, bh, bl, ch, cl, dh, dl, eh, el, fh, fl, gh, gl, hh, hl = h
    for t in range(80):
        j = t & 15
        if t >= 16:
            # W[t] = s1(W[t-2]) + W[t-7] + s0(W[t-15]) + W[t-16]; W[t-16] is slot j.
            i = (t - 2) & 15
            xh = wh[i]
            xl = wl[i]
            i = (t - 15) & 15
            yh = wh[i]
            yl = wl[i]
            i = (t - 7) & 15
            lo = (((xl >> 19 | xh << 13) ^ (xh >> 29 | xl << 3) ^ (xl >> 6 | xh << 26)) & M) \
                + wl[i] + wl[j] \
                + (((yl >> 1 | (yh & 1) << 31) ^ (yl >> 8 | yh << 24) ^ (yl >> 7 | yh << 25))
                   & M)
            wh[j] = ((xh >> 19 | xl << 13) ^ (xl >> 29 | xh << 3) ^ (xh >> 6)) \
                + wh[i] \
                + ((yh >> 1 | (yl & 1) << 31) ^ (yh >> 8 | yl << 24) ^ (yh >> 7)) \
                + wh[j] + (lo >> 32) & M
            wl[j] = lo & M
        # T1 = h + S1(e) + Ch(e, f, g) + K[t] + W[t]; T2 = S0(a) + Maj(a, b, c)
        i = t + t
        lo = hl + (((el >> 14 | eh << 18) ^ (el >> 18 | eh << 14) ^ (eh >> 9 | el << 23)) & M) \
            + (gl ^ (el & (fl ^ gl))) + K[i + 1] + wl[j]
        t1h = hh + ((eh >> 14 | el << 18) ^ (eh >> 18 | el << 14) ^ (el >> 9 | eh << 23)) \
            + (gh ^ (eh & (fh ^ gh))) + K[i] + wh[j] + (lo >> 32)
        t1l = lo & M
        t2l = (((al >> 28 | ah << 4) ^ (ah >> 2 | al << 30) ^ (ah >> 7 | al << 25)) & M) \
            + ((al & bl) | (cl & (al | bl)))
        t2h = ((ah >> 28 | al << 4) ^ (al >> 2 | ah << 30) ^ (al >> 7 | ah << 25)) \
            + ((ah & bh) | (ch & (ah | bh)))
        hh = gh
        hl = gl
        gh = fh
        gl = fl
        fh = eh
        fl = el
        lo = dl + t1l
        el = lo & M
        eh = dh + t1h + (lo >> 32) & M
        dh = ch
        dl = cl
        ch = bh
        cl = bl
        bh = ah
        bl = al
        lo = t1l + t2l
        al = lo & M
        ah = t1h + t2h + (lo >> 32) & M
    v = (ah, al, bh, bl, ch, cl, dh, dl, eh, el, fh, fl, gh, gl, hh, hl)
    for i in range(0, 16, 2):
        lo = h[i + 1] + v[i + 1]
        h[i] = h[i] + v[i] + (lo >> 32) & M
        h[i + 1] = lo & M


class _PureSha512:
    """Incremental SHA-512; digest() leaves the state usable for further update()."""

    def __init__(self, data=b""):
        self._h = list(_H0)
        self._buf = bytearray(128)
        self._fill = 0
        self._len = 0
        self._wh = [0] * 16
        self._wl = [0] * 16
        if data:
            self.update(data)

    def update(self, data):
        if isinstance(data, str):
            raise TypeError("sha512 hashes bytes, not str: encode the text first")
        mv = memoryview(data)
        n = len(mv)
        self._len += n
        pos = 0
        fill = self._fill
        if fill:
            take = min(128 - fill, n)
            self._buf[fill:fill + take] = mv[:take]
            fill += take
            pos = take
            if fill < 128:
                self._fill = fill
                return
            _compress(self._h, self._wh, self._wl, self._buf, 0)
        while n - pos >= 128:
            _compress(self._h, self._wh, self._wl, mv, pos)
            pos += 128
        rest = n - pos
        self._buf[:rest] = mv[pos:]
        self._fill = rest

    def digest(self):
        h = list(self._h)
        tail = bytearray(256)
        fill = self._fill
        tail[:fill] = self._buf[:fill]
        tail[fill] = 0x80
        end = 128 if fill < 112 else 256
        # Message length in bits, 128-bit big-endian; lengths below 2**61 bytes need 64 bits.
        struct.pack_into(">Q", tail, end - 8, self._len << 3)
        for off in range(0, end, 128):
            _compress(h, self._wh, self._wl, tail, off)
        return struct.pack(">16I", *h)


# The incremental hasher: Sha512(data=b"") with update(data) and digest().
Sha512 = _PureSha512 if _native is None else _native


def sha512(data):
    """SHA-512 digest (64 bytes) of a bytes-like object."""
    return Sha512(data).digest()
