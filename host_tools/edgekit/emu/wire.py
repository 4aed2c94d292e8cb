"""What happens to bytes on the wire: pacing to the baud rate, and noise."""
import random

_BURST = 256         # bytes of allowance a direction may bank (covers a late timer)
CHUNK = 32           # wait for this much allowance before the next paced step
NOISE_KINDS = ("flip", "drop", "dup")


class Pacer:
    def __init__(self, loop, bytes_per_s):
        self.loop = loop
        self.rate = float(bytes_per_s)
        self.tokens = float(_BURST)
        self.last = loop.time()

    def refill(self):
        now = self.loop.time()
        self.tokens = min(float(_BURST), self.tokens + (now - self.last) * self.rate)
        self.last = now
        return int(self.tokens)

    def take(self, n):
        self.tokens -= n

    def delay_for(self, n):
        return max(0.0, (n - self.tokens) / self.rate)


class Noise:
    def __init__(self):
        self.rate, self.kinds = 0.0, NOISE_KINDS
        self.rng = random.Random()
        self.events = {k: 0 for k in NOISE_KINDS}   # cumulative over reconfigurations

    def configure(self, rate, kinds=NOISE_KINDS, seed=None):
        if not 0.0 <= rate <= 1.0:
            raise ValueError("noise rate is a probability per byte: 0.0 to 1.0")
        bad = [k for k in kinds if k not in NOISE_KINDS]
        if bad or not kinds:
            raise ValueError(f"noise kinds {bad or kinds}: use some of {', '.join(NOISE_KINDS)}")
        self.rate, self.kinds = float(rate), tuple(kinds)
        if seed is not None:
            self.rng.seed(seed)

    def apply(self, data):
        if not self.rate or not data:
            return data
        out = bytearray()
        rng = self.rng
        for b in data:
            if rng.random() >= self.rate:
                out.append(b)
                continue
            kind = self.kinds[rng.randrange(len(self.kinds))]
            self.events[kind] += 1
            if kind == "flip":
                out.append(b ^ (1 << rng.randrange(8)))
            elif kind == "dup":
                out += bytes((b, b))
        return bytes(out)
