"""Text metrics against hand-computed values: edit distance, PER/WER, BLEU, chrF."""

import math
import time

import pytest
from sacrebleu.metrics import BLEU

from attnlab import metrics
from attnlab.text_metrics import bleu, chrf, edit_distance, g2p_error_sums, per, wer


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ([], [], 0),
        ([], ["a", "b"], 2),  # two insertions
        (["a", "b", "c"], [], 3),  # three deletions
        (["a", "b", "c"], ["a", "b", "c"], 0),
        (["a", "b", "c"], ["a", "x", "c"], 1),  # substitution
        (["a", "b", "c"], ["a", "b", "x", "c"], 1),  # insertion
        (["a", "b", "c"], ["a", "c"], 1),  # deletion
        (["a", "b"], ["b", "a"], 2),  # no transpositions in Levenshtein
        ("kitten", "sitting", 3),  # the textbook example, over characters
        ([1, 2, 3, 4], [2, 3, 4, 5], 2),
    ],
)
def test_edit_distance(a, b, expected):
    assert edit_distance(a, b) == expected
    assert edit_distance(b, a) == expected  # symmetric


def test_edit_distance_is_fast_enough_for_10k_words():
    hyp = "HH AH0 L OW1 W ER1 L D".split()
    ref = "HH EH0 L OW1 W ER1 L D Z".split()
    start = time.perf_counter()
    for _ in range(10_000):
        edit_distance(hyp, ref)
    assert time.perf_counter() - start < 5.0


def test_g2p_sums_single_reference():
    hyps = [["K", "AE", "T"], ["D", "AO", "G"], ["B", "ER", "D", "Z"]]
    refs = [[["K", "AE", "T"]], [["D", "AA", "G"]], [["B", "ER", "D"]]]
    sums = g2p_error_sums(hyps, refs)
    # cat: correct; dog: 1 substitution; bird: 1 insertion. 9 reference phonemes.
    assert sums == {"phoneme_errors": 2, "phonemes": 9, "word_errors": 2, "words": 3}
    assert per(sums) == pytest.approx(2 / 9)
    assert wer(sums) == pytest.approx(2 / 3)


def test_g2p_matching_second_reference_is_correct():
    # "either": IY1 DH ER0 or AY1 DH ER0; the hypothesis matches the second variant exactly.
    hyps = [["AY", "DH", "ER"]]
    refs = [[["IY", "DH", "ER"], ["AY", "DH", "ER"]]]
    sums = g2p_error_sums(hyps, refs)
    assert sums == {"phoneme_errors": 0, "phonemes": 3, "word_errors": 0, "words": 1}


def test_g2p_per_uses_closest_reference():
    # Distances: 4 to the long first reference (length 6), 1 to the second (length 3), so the
    # second reference supplies both the error count and the phoneme count.
    hyps = [["T", "AH", "M"]]
    refs = [[["T", "OW", "M", "EY", "T", "OW"], ["T", "AH", "N"]]]
    assert edit_distance(hyps[0], refs[0][0]) == 4
    sums = g2p_error_sums(hyps, refs)
    assert sums == {"phoneme_errors": 1, "phonemes": 3, "word_errors": 1, "words": 1}


def test_g2p_ties_take_the_first_reference():
    hyps = [["A", "B"]]
    # Both references at distance 1: the first (length 3) is used, whichever is shorter.
    assert g2p_error_sums(hyps, [[["A", "C", "B"], ["A", "X"]]])["phonemes"] == 3
    assert g2p_error_sums(hyps, [[["A", "X"], ["A", "C", "B"]]])["phonemes"] == 2


def test_g2p_sums_add_up_over_batches():
    hyps = [["A"], ["B", "C"], [], ["D"]]
    refs = [[["A"]], [["B"]], [["E", "F"]], [["D"], ["G"]]]
    whole = g2p_error_sums(hyps, refs)
    parts = metrics.add(g2p_error_sums(hyps[:2], refs[:2]), g2p_error_sums(hyps[2:], refs[2:]))
    assert parts == whole
    # Empty hypothesis: two deletions against "E F".
    assert whole == {"phoneme_errors": 3, "phonemes": 5, "word_errors": 2, "words": 4}


def test_g2p_errors_and_empty_inputs():
    with pytest.raises(ValueError, match="hypotheses"):
        g2p_error_sums([["A"]], [])
    with pytest.raises(ValueError, match="no reference"):
        g2p_error_sums([["A"]], [[]])
    empty = g2p_error_sums([], [])
    assert empty["words"] == 0
    assert math.isnan(per(empty)) and math.isnan(wer(empty))


def test_bleu_identical_is_100():
    corpus = ["the cat sat on the mat .", "a quick brown fox jumps over the lazy dog"]
    assert bleu(corpus, corpus) == pytest.approx(100.0)


def test_bleu_hand_computed_with_brevity_penalty():
    # hyp (6 tokens) vs ref (7 tokens): n-gram precisions 6/6, 4/5, 3/4, 2/3 and brevity
    # penalty exp(1 - 7/6).
    hyp, ref = "the cat sat on the mat", "the cat sat on the red mat"
    expected = 100 * math.exp(1 - 7 / 6) * (1 * 4 / 5 * 3 / 4 * 2 / 3) ** 0.25
    assert expected == pytest.approx(67.318, abs=1e-3)
    assert bleu([hyp], [ref]) == pytest.approx(expected)
    assert bleu([hyp], [ref]) == pytest.approx(BLEU().sentence_score(hyp, [ref]).score)


def test_bleu_is_corpus_level_not_mean_of_sentences():
    # Corpus BLEU pools n-gram counts: a perfect sentence plus the case above is not the mean
    # of 100 and 67.3.
    hyps = ["the cat sat on the mat", "a quick brown fox jumps"]
    refs = ["the cat sat on the red mat", "a quick brown fox jumps"]
    # Pooled matches/totals: 1-grams 11/11, 2-grams 8/9, 3-grams 6/7, 4-grams 4/5; lengths 11/12.
    expected = 100 * math.exp(1 - 12 / 11) * (8 / 9 * 6 / 7 * 4 / 5) ** 0.25
    assert bleu(hyps, refs) == pytest.approx(expected)


def test_chrf():
    corpus = ["the cat sat on the mat", "hello world"]
    assert chrf(corpus, corpus) == pytest.approx(100.0)
    score = chrf(["the cat sat on a mat", "hello word"], corpus)
    assert 0.0 < score < 100.0


def test_empty_hypotheses_do_not_crash():
    refs = ["the cat sat on the mat", "hello world"]
    assert bleu(["", ""], refs) == 0.0
    assert chrf(["", ""], refs) == 0.0
    assert 0.0 < bleu(["", "the cat sat on the mat"], refs[::-1]) < 100.0
    assert math.isnan(bleu([], [])) and math.isnan(chrf([], []))
    with pytest.raises(ValueError):
        bleu(["a"], [])
