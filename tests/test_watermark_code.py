"""The error-correcting code over RivaGAN's 32 bits: every message round-trips, every pattern of up to the
code's bound of wrong bits is corrected, soft decision corrects more when the wrong bits are the doubtful ones,
and bad input is refused with the field named."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from xmodal.guards.provenance import watermark_code as wc


def hard(bits: np.ndarray) -> np.ndarray:
    """0/1 bits as confident log-odds."""
    return np.where(bits.astype(bool), 4.0, -4.0)


@pytest.mark.parametrize(("name", "k", "d"), [("rm1", 6, 16), ("rm2", 16, 8), ("rep4", 8, 4)])
def test_parameters_are_the_codes_claimed(name: str, k: int, d: int) -> None:
    code = wc.code(name)
    assert (code.k, code.distance, code.corrects) == (k, d, (d - 1) // 2)
    words = np.array([code.codeword_bits(m) for m in range(2**k)], dtype=np.int8)
    assert len({w.tobytes() for w in words}) == 2**k  # distinct
    # linear code, scrambled by one mask: distances are the weights of the unscrambled words
    base = words ^ words[0]
    assert int(base[1:].sum(1).min()) == d
    assert code.encode(0) == wc.MASK  # message 0 is the default payload


@pytest.mark.parametrize("name", ["rm1", "rm2", "rep4"])
def test_round_trip(name: str) -> None:
    code = wc.code(name)
    messages = range(2**code.k) if code.k <= 8 else random.Random(1).sample(range(2**code.k), 60) + [0, 2**16 - 1]
    for m in messages:
        payload = code.encode(m)
        bits = np.array([(payload >> (31 - i)) & 1 for i in range(32)])
        assert np.array_equal(bits, code.codeword_bits(m))
        assert code.decode(hard(bits)) == (m, 0)


@pytest.mark.parametrize("name", ["rm1", "rm2", "rep4"])
def test_wrong_bits_up_to_the_bound_are_corrected(name: str) -> None:
    code = wc.code(name)
    rng = random.Random(7)
    for errors in range(code.corrects + 1):
        for _ in range(60 if code.k <= 8 else 15):
            m = rng.randrange(2**code.k)
            bits = code.codeword_bits(m).copy()
            flipped = rng.sample(range(32), errors)
            bits[flipped] ^= 1
            assert code.decode(hard(bits)) == (m, errors)
    if name == "rep4":  # one error in each of the 8 groups at once: still within the per-group bound
        bits = code.codeword_bits(0xA5).copy()
        bits[list(range(8))] ^= 1
        assert code.decode(hard(bits))[0] == 0xA5


def test_beyond_the_bound_a_hard_decoder_can_be_wrong_but_soft_decision_uses_confidence() -> None:
    code = wc.code("rm2")  # d = 8: 3 errors always corrected, 4 not always
    m = 0x1234
    bits = code.codeword_bits(m).copy()
    # a pattern of 4 flips that lands halfway to another codeword: the hard decision is a tie or wrong
    other = code.codeword_bits(m ^ 1)
    differ = np.flatnonzero(bits != other)
    assert len(differ) == 8
    bits[differ[:4]] ^= 1
    llr = hard(bits)
    # the 4 wrong bits were read with little confidence (as RivaGAN's wrong bits usually are): corrected
    llr[differ[:4]] *= 0.1
    assert code.decode(llr)[0] == m
    # read just as confidently as the right ones, 5 wrong bits decode to the other message: past the bound
    bits[differ[4]] ^= 1
    assert code.decode(hard(bits))[0] == m ^ 1


def test_every_pattern_within_the_bound_for_one_message_rm1_exhaustive_to_three() -> None:
    code = wc.code("rm1")
    word = code.codeword_bits(37)
    for errors in range(4):
        for flipped in itertools.combinations(range(32), errors):
            bits = word.copy()
            bits[list(flipped)] ^= 1
            assert code.decode(hard(bits))[0] == 37


def test_bad_input_is_refused_naming_the_fix() -> None:
    with pytest.raises(ValueError, match=r"rm2 watermark message .* \[0, 2\*\*16\)"):
        wc.code("rm2").encode(2**16)
    with pytest.raises(ValueError, match="rm1 watermark message"):
        wc.code("rm1").codeword_bits(-1)
    with pytest.raises(ValueError, match="32 finite log-odds"):
        wc.code("rm1").decode(np.zeros(31))
    with pytest.raises(ValueError, match="32 finite log-odds"):
        wc.code("rm1").decode(np.full(32, np.nan))
    with pytest.raises(ValueError, match="unknown watermark code 'bch'.*rm1, rm2, rep4"):
        wc.code("bch")
