"""Host framing (edgekit.protocol.framing) against SPEC section 2, rule by rule.

The frame layout is checked against a textbook per-byte COBS written here and published COBS
examples; the device decoder gets the same rules in tests/firmware/test_device_framing.py and
byte-for-byte agreement in tests/host/test_fuzz_frames.py.
"""
import binascii
import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgekit import catalog
from edgekit.protocol import framing
from edgekit.protocol.framing import INTERRUPT, Dropped, FrameDecoder, encode_frame, max_wire

BAD_FRAME, BAD_CRC, TOO_LARGE = catalog.E_BAD_FRAME, catalog.E_BAD_CRC, catalog.E_TOO_LARGE


def ref_cobs(data: bytes) -> bytes:
    """Cheshire & Baker's StuffData, byte by byte (a full final block is followed by 01)."""
    out, block = bytearray(), bytearray()
    for b in data:
        if b == 0:
            out += bytes([len(block) + 1]) + block
            block.clear()
        else:
            block.append(b)
            if len(block) == 254:
                out += b"\xff" + block
                block.clear()
    return bytes(out + bytes([len(block) + 1]) + block)


def ref_escape(data: bytes) -> bytes:
    out = bytearray()
    for b in data:
        out += bytes([0x10, b ^ 0x20]) if b in (0x03, 0x10) else bytes([b])
    return bytes(out)


def ref_frame(body: bytes) -> bytes:
    return b"\x00" + ref_escape(ref_cobs(body + struct.pack("<I", binascii.crc32(body)))) + b"\x00"


def feed_all(dec, stream, chunk=None):
    out = []
    if chunk is None:
        return dec.feed(stream)
    for i in range(0, len(stream), chunk):
        out += dec.feed(stream[i:i + chunk])
    return out


# --- sender ---------------------------------------------------------------------------------

# Examples 1-6 and 8-11 of the COBS article (en.wikipedia.org/wiki/Consistent_Overhead_Byte_
# Stuffing), without the delimiter. Where the data ends in a full 254-byte block (examples 7
# and 8) the paper's StuffData adds a final 01 that the article leaves out: see the next test.
COBS_VECTORS = [
    ("00", "0101"), ("0000", "010101"), ("001100", "01021101"), ("11220033", "0311220233"),
    ("11223344", "0511223344"), ("11000000", "0211010101"),
    ("00" + bytes(range(1, 255)).hex(), "01ff" + bytes(range(1, 255)).hex() + "01"),
    (bytes(range(1, 256)).hex(), "ff" + bytes(range(1, 255)).hex() + "02ff"),
    (bytes(range(2, 256)).hex() + "00", "ff" + bytes(range(2, 256)).hex() + "0101"),
    (bytes(range(3, 256)).hex() + "0001", "fe" + bytes(range(3, 256)).hex() + "0201"),
]


@pytest.mark.parametrize("raw,encoded", COBS_VECTORS)
def test_cobs_matches_published_examples(raw, encoded):
    assert framing._cobs(bytes.fromhex(raw)).hex() == encoded


def test_full_final_block_is_followed_by_01_and_both_forms_decode():
    run = bytes(range(1, 255))  # 254 non-zero bytes ending the data
    assert framing._cobs(run) == b"\xff" + run + b"\x01"   # the paper's StuffData
    # The article's variant drops that 01; a receiver takes both as the same data. Find a
    # 250-byte body whose CRC has no zero byte, so body || crc is one full block.
    body = next(b for b in (bytes([i]) * 250 for i in range(1, 256))
                if 0 not in struct.pack("<I", binascii.crc32(b)))
    r = body + struct.pack("<I", binascii.crc32(body))
    for cobs in (b"\xff" + r + b"\x01", b"\xff" + r):
        assert FrameDecoder(1024).feed(b"\x00" + ref_escape(cobs) + b"\x00") == [body]


@settings(max_examples=300)
@given(st.binary(min_size=1, max_size=1100))
def test_encode_frame_is_the_spec_layout(body):
    wire = encode_frame(body)
    assert wire == ref_frame(body)
    assert wire[0] == 0 and wire[-1] == 0
    inner = wire[1:-1]
    assert 0 not in inner and 3 not in inner


@pytest.mark.parametrize("size", [0, catalog.MAX_FRAME_LIMIT + 1])
def test_encode_frame_refuses_bodies_outside_1_to_4096(size):
    with pytest.raises(ValueError, match="split the message"):
        encode_frame(b"x" * size)


def test_overhead_on_random_data_is_small():
    body = os.urandom(4096)
    wire = encode_frame(body)
    # COBS 1/254, escapes 2/256 on random data, CRC 4, delimiters 2
    assert len(wire) <= len(body) + 4 + 2 + len(body) // 254 + 1 + 3 * len(body) * 2 // 256


# --- receiver: rules of SPEC section 2 ------------------------------------------------------

@settings(max_examples=200)
@given(st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=5),
       st.integers(1, 64))
def test_partial_reads_of_any_size_give_the_same_bodies(bodies, chunk):
    stream = b"".join(encode_frame(b) for b in bodies)
    assert feed_all(FrameDecoder(300), stream, chunk) == bodies
    assert feed_all(FrameDecoder(300), stream, 1) == bodies


@pytest.mark.parametrize("fill", [b"\x55", b"\x00", b"\x10", b"\x00\x10\xff"])
def test_body_of_exactly_max_frame_passes_and_one_more_is_too_large(fill):
    dec = FrameDecoder(64)
    for size in (64, 65, 64 * 30):
        body = (fill * size)[:size]
        assert dec.feed(encode_frame(body)) == ([body] if size == 64 else [Dropped(TOO_LARGE)])
    assert dec.feed(encode_frame(b"ok")) == [b"ok"]
    assert (dec.frames, dec.dropped) == (2, 2)


@pytest.mark.parametrize("fill", [b"\x10", b"\x03", b"\x00", b"\xff"])
def test_escapes_and_cobs_overhead_do_not_count_against_max_frame(fill):
    # a body of 0x10s doubles on the wire (past max_wire); what is held is the decoded body
    body = fill * 1024
    wire = encode_frame(body)
    assert FrameDecoder(1024).feed(wire) == [body]


def test_receiver_holds_no_more_than_max_wire_whatever_arrives():
    for max_frame in (1, 64, 1024, catalog.MAX_FRAME_LIMIT):
        dec = FrameDecoder(max_frame)
        assert len(dec._buf) <= max_wire(max_frame)
        res = dec.feed(os.urandom(50_000).replace(b"\x00", b"\x01") + b"\x00")
        assert len(dec._buf) <= max_wire(max_frame)
        assert all(isinstance(r, Dropped) or r is INTERRUPT for r in res)


@pytest.mark.parametrize("max_frame", [0, catalog.MAX_FRAME_LIMIT + 1])
def test_decoder_refuses_a_max_frame_outside_the_limit(max_frame):
    with pytest.raises(ValueError, match="max_frame"):
        FrameDecoder(max_frame)


def _candidate(inner: bytes) -> bytes:
    return b"\x00" + inner + b"\x00"


def test_escape_followed_by_anything_but_23_or_30_is_bad_frame():
    good = encode_frame(b"\x10hello\x03")
    assert b"\x10\x30" in good and b"\x10\x23" in good
    assert FrameDecoder().feed(good.replace(b"\x10\x30", b"\x10\x31")) == [Dropped(BAD_FRAME)]
    # the escape is the last byte, after a complete COBS block
    assert FrameDecoder().feed(_candidate(b"\x02a\x10")) == [Dropped(BAD_FRAME)]


def test_code_byte_running_past_the_end_is_bad_frame():
    assert FrameDecoder().feed(_candidate(b"\x09abcd")) == [Dropped(BAD_FRAME)]


# the last one is an empty body with its (correct) CRC: a body is at least 1 byte
@pytest.mark.parametrize("raw", [b"", b"\x01", b"abcd", struct.pack("<I", binascii.crc32(b""))])
def test_candidate_shorter_than_crc_plus_one_byte_is_bad_crc(raw):
    wire = _candidate(ref_escape(ref_cobs(raw)))
    assert FrameDecoder().feed(wire) == [Dropped(BAD_CRC, len(raw))]


def test_crc_mismatch_is_bad_crc_with_the_decoded_size():
    body = b"a body long enough to answer"
    r = bytearray(body + struct.pack("<I", binascii.crc32(body)))
    r[3] ^= 0x01
    res = FrameDecoder().feed(_candidate(ref_escape(ref_cobs(bytes(r)))))
    assert res == [Dropped(BAD_CRC, len(body) + 4)]
    assert res[0].size >= 8  # SPEC: such a candidate MAY be answered with ERROR


def test_garbage_and_line_noise_before_a_frame_resynchronise():
    body = b"after the noise"
    noise = os.urandom(3000)
    res = FrameDecoder().feed(noise + encode_frame(body))
    assert res[-1] == body
    assert all(isinstance(r, Dropped) or r is INTERRUPT for r in res[:-1])


def test_repl_text_between_frames_is_dropped_without_losing_frames():
    text = b"\r\nMicroPython v1.29.0 on 2026-11-21; linux\r\n>>> print(1)\r\n1\r\n>>> "
    stream = encode_frame(b"one") + text + encode_frame(b"two") + text * 3
    res = FrameDecoder().feed(stream)
    assert [r for r in res if isinstance(r, bytes)] == [b"one", b"two"]
    assert len(res) == 3 and isinstance(res[1], Dropped)  # the text before "two"
    assert FrameDecoder().feed(text * 10) == []  # no 0x00: nothing is ever reported


def test_empty_candidates_are_ignored():
    dec = FrameDecoder()
    assert dec.feed(b"\x00" * 20) == []
    assert dec.dropped == 0


def test_ctrl_c_pair_outside_a_frame_is_an_interrupt():
    dec = FrameDecoder()
    assert dec.feed(b"\r") == []
    assert dec.feed(b"\x03") == [INTERRUPT]  # the pair split across reads
    assert dec.feed(encode_frame(b"x") + b"\r\x03\r\x03") == [b"x", INTERRUPT, INTERRUPT]


def test_lone_0x03_is_ignored_even_inside_a_frame():
    body = b"line noise put a 0x03 in me"
    wire = bytearray(encode_frame(body))
    wire.insert(7, 3)
    assert FrameDecoder().feed(b"\x03" + bytes(wire) + b"\x03") == [body]


def test_ctrl_c_inside_a_frame_interrupts_and_drops_it():
    body = b"abcdefgh" * 4
    wire = encode_frame(body)
    cut = wire[:10] + b"\r\x03" + wire[10:]
    res = FrameDecoder().feed(cut + encode_frame(b"next"))
    assert res[0] is INTERRUPT
    assert res[-1] == b"next"
    assert body not in res


def test_results_keep_stream_order_and_counters_add_up():
    stream = (encode_frame(b"1") + b"junk" + encode_frame(b"2") + b"\r\x03"
              + encode_frame(b"3" * 2000) + encode_frame(b"4"))
    dec = FrameDecoder(1024)
    res = feed_all(dec, stream, 5)
    assert res == [b"1", Dropped(BAD_FRAME), b"2", INTERRUPT, Dropped(TOO_LARGE), b"4"]
    assert (dec.frames, dec.dropped) == (3, 2)
