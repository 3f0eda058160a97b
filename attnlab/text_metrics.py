"""Host-side text metrics: edit distance, G2P phoneme/word error rates, BLEU and chrF.

Everything here runs on python lists of decoded strings/tokens after generation (not on device).

- `edit_distance`: Levenshtein distance between two token sequences (unit costs).
- `g2p_error_sums` returns *sums* (`phoneme_errors`, `phonemes`, `word_errors`, `words`) so the
  results of several batches add up exactly (`attnlab.metrics.add`); `per` and `wer` turn
  accumulated sums into fractions. Words with several reference pronunciations (CMUdict
  variants) are scored against the closest one, the usual G2P convention.
- `bleu` and `chrf` wrap sacrebleu's corpus-level scores on detokenised strings, so numbers are
  comparable with published ones. They return sacrebleu's **0-100** scale (not 0-1).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from sacrebleu.metrics import BLEU, CHRF


def edit_distance(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Levenshtein distance between token sequences `a` and `b` (insert/delete/substitute = 1).

    Tokens are compared with `==` (strings, ints, ...; a `str` argument compares characters).
    Pure python, `O(len(a) * len(b))` time and `O(min(len(a), len(b)))` memory: about 10 µs for
    a pair of 10-token sequences, so 10k G2P words take a fraction of a second.
    """
    if len(a) < len(b):
        a, b = b, a  # keep the row (over b) the shorter one
    if not b:
        return len(a)
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(
                min(
                    previous[j] + 1,  # delete x
                    current[j - 1] + 1,  # insert y
                    previous[j - 1] + (x != y),  # substitute (free when equal)
                )
            )
        previous = current
    return previous[-1]


def g2p_error_sums(
    hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[Sequence[str]]]
) -> dict[str, int]:
    """Phoneme and word error sums for grapheme-to-phoneme output.

    Args:
      hypotheses: `[N]` predicted pronunciations, each a list of phoneme strings.
      references: `[N]` lists of one or more reference pronunciations for the same word.

    Returns:
      `{"phoneme_errors", "phonemes", "word_errors", "words"}` (ints). Per word, the reference
      used for the phoneme counts is the one at minimum edit distance from the hypothesis (ties:
      the first listed); `phoneme_errors` adds that distance and `phonemes` that reference's
      length. A word is correct (`word_errors` += 0) when the hypothesis equals any reference
      exactly, which is the same as the closest reference being at distance 0.

    Raises:
      ValueError: if the lists differ in length or a word has no reference.
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")
    sums = {"phoneme_errors": 0, "phonemes": 0, "word_errors": 0, "words": 0}
    for n, (hyp, refs) in enumerate(zip(hypotheses, references, strict=True)):
        if len(refs) == 0:
            raise ValueError(f"word {n} has no reference pronunciation")
        hyp = list(hyp)
        best_dist, best_ref = min(
            ((edit_distance(hyp, list(ref)), k) for k, ref in enumerate(refs)),
        )  # (distance, index): ties resolve to the first reference
        sums["phoneme_errors"] += best_dist
        sums["phonemes"] += len(refs[best_ref])
        sums["word_errors"] += int(best_dist > 0)
        sums["words"] += 1
    return sums


def per(sums: dict) -> float:
    """Phoneme error rate `phoneme_errors / phonemes` as a fraction (0 = perfect).

    Can exceed 1 when hypotheses insert many phonemes; NaN when there are no phonemes.
    """
    return sums["phoneme_errors"] / sums["phonemes"] if sums["phonemes"] > 0 else float("nan")


def wer(sums: dict) -> float:
    """Word error rate `word_errors / words` as a fraction in [0, 1]; NaN for no words."""
    return sums["word_errors"] / sums["words"] if sums["words"] > 0 else float("nan")


def _check_corpus(hypotheses: Sequence[str], references: Sequence[str]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (sacrebleu defaults: 13a tokenisation, 4-grams, brevity penalty), 0-100.

    Args:
      hypotheses: `[N]` detokenised output sentences (empty strings allowed, they score 0).
      references: `[N]` detokenised reference sentences (one reference per sentence).

    Returns:
      sacrebleu's score on its **0-100** scale; NaN for an empty corpus. Note that a corpus
      without any 4-gram (every sentence shorter than 4 tokens) scores 0 even when identical to
      the references: corpus BLEU applies no smoothing to a zero n-gram count.
    """
    _check_corpus(hypotheses, references)
    if not hypotheses:
        return float("nan")
    return float(BLEU().corpus_score(list(hypotheses), [list(references)]).score)


def chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF (sacrebleu defaults: character 6-grams, beta 2, no word n-grams), 0-100.

    Same arguments as `bleu`. Returns sacrebleu's **0-100** score; NaN for an empty corpus.
    """
    _check_corpus(hypotheses, references)
    if not hypotheses:
        return float("nan")
    return float(CHRF().corpus_score(list(hypotheses), [list(references)]).score)
