"""Deterministic map order must not depend on how a dict was built: MicroPython's dict layout
differs between a pre-sized literal and incremental inserts (a real bug: a provisioned
device's identity record came out unsorted and could not be read back)."""
from edgekit.testing import mp

SCRIPT = r"""
import cbor, json, random
random.seed(11)
WORDS = "id seed pub kind fleet site valve flow tamper leak burst battery volume a bb ccc".split()
bad = []
for trial in range(300):
    n = random.randint(2, 12)
    keys = []
    while len(keys) < n:
        w = random.choice(WORDS) + str(random.randint(0, 30) if random.random() < .3 else "")
        if w not in keys:
            keys.append(w)
    pairs = [(k, i) for i, k in enumerate(keys)]
    literal = eval("{" + ", ".join("%r: %d" % p for p in pairs) + "}")
    grown = {}
    for k, v in pairs:
        grown[k] = v
    shuffled = list(pairs)
    for i in range(len(shuffled) - 1, 0, -1):
        j = random.randint(0, i)
        shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
    built = dict(shuffled)
    outs = [cbor.dumps(d) for d in (literal, grown, built)]
    try:
        cbor.loads(outs[0])           # the strict decoder checks the order
        same = outs[0] == outs[1] == outs[2]
    except ValueError:
        same = False
    if not same:
        bad.append(keys)
print(json.dumps({"bad": bad[:5], "count": len(bad)}))
"""


def test_map_order_independent_of_dict_construction():
    out = mp.run_json(SCRIPT, heap="1M")   # the eval-built literals need room
    assert out["count"] == 0, out["bad"]
