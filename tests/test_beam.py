"""Beam search (`attnlab.beam`) on tiny random-parameter models, checked by teacher forcing.

Every returned hypothesis is run back through the model by teacher forcing
(`models.apply_batch`): its log-probability must equal `log_probs`, its attention weights must
equal `alpha`, and `scores` must be `log_probs / lp(length)`. `beam_size=1` must reproduce
`generate.greedy` exactly; a beam of 4 must score at least as well as greedy decoding on every
row and return the same hypotheses as a plain Python beam search fed by teacher forcing; on a
5-token vocabulary a beam wide enough to hold every hypothesis must return exactly the best ones
found by exhaustive enumeration. Random parameters (normal, scale 0.8; the EOS bias raised so
that hypotheses finish at many lengths) give spread-out distributions, so beam search and
greedy decoding disagree on some rows. Compiles dominate the run time: each program is compiled
once per module and shared by the tests; the length-penalty `alpha` is traced, so both
penalties share one compile.
"""

from __future__ import annotations

import functools
import itertools

import jax
import numpy as np
import pytest

from attnlab import beam, generate, models
from attnlab.config import default_config
from attnlab.data.vocab import BOS_ID, EOS_ID, PAD_ID

SRC_VOCAB, TGT_VOCAB = 9, 8
S, MAX_LEN = 5, 6
LENGTHS = np.array([5, 3, 0, 4, 2, 5, 1, 3, 5, 4, 2, 0, 5, 3, 4, 1], np.int32)  # 2 empty sources
BEAM = 4
ALPHAS = (0.0, 0.6)
CASES = {"bahdanau": "additive", "luong": "general"}
TOL = 1e-4


def build(order: str, score: str, tgt_vocab: int, seed: int, eos_shift: float = 0.0):
    """A tiny model with random normal parameters (the EOS output bias shifted by `eos_shift`)."""
    config = default_config()
    cfg = config.model
    cfg.embed_dim = 6
    cfg.encoder.hidden_dim = 5
    cfg.decoder_hidden_dim = 8
    cfg.attention.attn_dim = 6
    cfg.attention.zero_v = False
    cfg.decoder = order
    cfg.score = score
    model = models.build_model(config, SRC_VOCAB, tgt_vocab)
    shapes = jax.eval_shape(lambda: models.init_params(model, jax.random.key(0)))
    rng = np.random.default_rng(seed)
    params = jax.tree.map(lambda x: (0.8 * rng.normal(size=x.shape)).astype(np.float32), shapes)
    params["decoder"]["out"]["bias"][EOS_ID] += eos_shift
    return model, params


def make_src(lengths, seed: int):
    rng = np.random.default_rng(seed)
    src = rng.integers(3, SRC_VOCAB, size=(len(lengths), S)).astype(np.int32)
    src[np.arange(S)[None, :] >= lengths[:, None]] = PAD_ID
    return src, lengths.astype(np.int32)


def jit_beam(model, max_len, beam_size, n_best):
    fn = functools.partial(
        beam.beam_search, model, max_len=max_len, beam_size=beam_size, n_best=n_best
    )
    return jax.jit(lambda p, s, sl, alpha: fn(p, s, sl, alpha=alpha))


def teacher_forced(apply, params, src, src_len, tokens, length):
    """Log-probability `[B, N]` and weights `[B, N, T, S]` of `tokens [B, N, T]` (to `length`)."""
    B, N, T = tokens.shape
    tgt_in = np.concatenate([np.full((B, N, 1), BOS_ID), tokens[..., :-1]], -1).astype(np.int32)
    logits, alpha = jax.device_get(
        apply(params, np.repeat(src, N, 0), np.repeat(src_len, N), tgt_in.reshape(B * N, T))
    )
    logp = jax.nn.log_softmax(np.asarray(logits, np.float64), -1)
    token_lp = np.take_along_axis(np.asarray(logp), tokens.reshape(B * N, T, 1), -1)[..., 0]
    valid = np.arange(T)[None, :] < length.reshape(B * N, 1)
    log_prob = np.where(valid, token_lp, 0.0).sum(-1).reshape(B, N)
    return log_prob, np.asarray(alpha).reshape(B, N, T, -1)


def penalty(length, alpha):
    return ((5.0 + np.asarray(length, np.float64)) / 6.0) ** alpha


class Case:
    """One model, its batch and every decode the tests read (computed once)."""

    def __init__(self, order: str):
        self.model, self.params = build(order, CASES[order], TGT_VOCAB, seed=7, eos_shift=2.0)
        self.src, self.src_len = make_src(LENGTHS, seed=3)
        args = (self.params, self.src, self.src_len)
        greedy = jax.jit(lambda p, s, sl: generate.greedy(self.model, p, s, sl, MAX_LEN))
        self.greedy = jax.device_get(greedy(*args))  # tokens [B, T], alpha [B, T, S], length [B]
        one = jit_beam(self.model, MAX_LEN, 1, 1)
        self.beam1 = jax.device_get(one(*args, 0.6))
        wide = jit_beam(self.model, MAX_LEN, BEAM, BEAM)
        self.beams = {a: jax.device_get(wide(*args, a)) for a in ALPHAS}
        # Teacher-force the greedy output and every returned hypothesis in one batch.
        tokens = [self.greedy[0][:, None]] + [self.beams[a].tokens for a in ALPHAS]
        length = [self.greedy[2][:, None]] + [self.beams[a].length for a in ALPHAS]
        apply = jax.jit(functools.partial(models.apply_batch, self.model))
        log_prob, alpha = teacher_forced(
            apply,
            self.params,
            self.src,
            self.src_len,
            np.concatenate(tokens, 1),
            np.concatenate(length, 1),
        )
        self.greedy_log_prob = log_prob[:, 0]
        self.forced = {
            a: (
                log_prob[:, 1 + i * BEAM : 1 + (i + 1) * BEAM],
                alpha[:, 1 + i * BEAM : 1 + (i + 1) * BEAM],
            )
            for i, a in enumerate(ALPHAS)
        }

    def next_log_probs(self, prefixes):
        """Teacher-forced next-token log-probabilities `[B, K, V]` after `prefixes[b][k]`."""
        tgt_in = np.full((len(LENGTHS), BEAM, MAX_LEN), PAD_ID, np.int32)
        tgt_in[..., 0] = BOS_ID
        for b, row in enumerate(prefixes):
            for k, prefix in enumerate(row):
                tgt_in[b, k, 1 : 1 + len(prefix)] = prefix
        src, src_len = np.repeat(self.src, BEAM, 0), np.repeat(self.src_len, BEAM)
        logits, _ = self.apply_beams(self.params, src, src_len, tgt_in.reshape(-1, MAX_LEN))
        logits = np.asarray(logits, np.float64).reshape(len(LENGTHS), BEAM, MAX_LEN, -1)
        step = np.array([[len(p) for p in row] + [0] * (BEAM - len(row)) for row in prefixes])
        logits = np.take_along_axis(logits, step[:, :, None, None], 2)[:, :, 0]
        return np.asarray(jax.nn.log_softmax(logits, -1))

    @functools.cached_property
    def apply_beams(self):
        return jax.jit(functools.partial(models.apply_batch, self.model))


def reference_beam_search(next_log_probs, rows, beam_size, vocab, max_len, alpha):
    """Beam search written plainly over Python tuples: per row, `[(tokens, log_prob)]` best first.

    Candidates are listed beam by beam, token by token (a finished hypothesis is its own only
    candidate) and ranked by `log_prob / lp(length)` with a stable sort, like `lax.top_k`.
    """
    beams = [[((), 0.0)] for _ in range(rows)]
    finished = lambda h: len(h) > 0 and h[-1] == EOS_ID
    for _ in range(max_len):
        if all(finished(h) for row in beams for h, _ in row):
            break
        lp = next_log_probs([[h for h, _ in row] for row in beams])
        for b, row in enumerate(beams):
            cands = []
            for k, (h, s) in enumerate(row):
                if finished(h):
                    cands.append((h, s))
                else:
                    cands += [(h + (v,), s + lp[b, k, v]) for v in range(vocab)]
            cands.sort(key=lambda c: -c[1] / penalty(len(c[0]), alpha))
            beams[b] = cands[:beam_size]
    return beams


@functools.cache
def get_case(order: str) -> Case:
    return Case(order)


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    return get_case(request.param)


# ----------------------------------------------------------------------------------------------
# Arguments
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"beam_size": 0}, "beam_size=0"),
        ({"beam_size": 2, "n_best": 3}, "n_best=3"),
        ({"beam_size": 2, "n_best": 0}, "n_best=0"),
        ({"beam_size": 2, "alpha": -0.5}, "alpha=-0.5"),
        ({"beam_size": 2, "max_len": 0}, "max_len=0"),
    ],
)
def test_invalid_arguments(kwargs, match):
    model, params = build("bahdanau", "additive", TGT_VOCAB, seed=0)
    src, src_len = make_src(LENGTHS[:2], seed=0)
    kwargs = {"max_len": MAX_LEN, **kwargs}
    with pytest.raises(ValueError, match=match):
        beam.beam_search(model, params, src, src_len, **kwargs)


def test_length_penalty():
    np.testing.assert_allclose(
        beam.length_penalty(np.arange(1, 5), 0.6), penalty(np.arange(1, 5), 0.6), rtol=1e-6
    )
    assert np.all(np.asarray(beam.length_penalty(np.arange(1, 5), 0.0)) == 1.0)
    assert float(beam.length_penalty(1, 1.0)) == 1.0  # lp(1) = 1 for every alpha


# ----------------------------------------------------------------------------------------------
# Against greedy decoding and a plain reference
# ----------------------------------------------------------------------------------------------


def test_beam_size_one_is_greedy(case):
    tokens, alpha, length = case.greedy
    got = case.beam1
    assert got.tokens.shape == (len(LENGTHS), 1, MAX_LEN)
    assert got.alpha.shape == (len(LENGTHS), 1, MAX_LEN, S)
    np.testing.assert_array_equal(got.tokens[:, 0], tokens)
    np.testing.assert_array_equal(got.length[:, 0], length)
    np.testing.assert_array_equal(got.alpha[:, 0], alpha)
    np.testing.assert_allclose(got.log_probs[:, 0], case.greedy_log_prob, atol=TOL, rtol=0)
    np.testing.assert_allclose(
        got.scores[:, 0], case.greedy_log_prob / penalty(length, 0.6), atol=TOL, rtol=0
    )


@pytest.mark.parametrize("alpha", ALPHAS)
def test_beam_scores_at_least_greedy(case, alpha):
    """Under the same normalisation, the best beam is never worse than greedy's hypothesis."""
    greedy_score = case.greedy_log_prob / penalty(case.greedy[2], alpha)
    best = case.beams[alpha].scores[:, 0]
    assert np.all(best >= greedy_score - 1e-5), (best, greedy_score)
    assert np.any(best > greedy_score + 1e-3), "beam search never beats greedy: a vacuous test"


@pytest.mark.parametrize("alpha", ALPHAS)
def test_matches_reference_beam_search(case, alpha):
    """The same hypotheses, lengths and scores as the plain Python beam search above."""
    got = case.beams[alpha]
    want = reference_beam_search(case.next_log_probs, len(LENGTHS), BEAM, TGT_VOCAB, MAX_LEN, alpha)
    for b, row in enumerate(want):
        for n, (tokens, log_prob) in enumerate(row):
            msg = f"row {b}, hypothesis {n}"
            assert got.length[b, n] == len(tokens), msg
            np.testing.assert_array_equal(got.tokens[b, n, : len(tokens)], tokens, err_msg=msg)
            np.testing.assert_allclose(got.log_probs[b, n], log_prob, atol=TOL, err_msg=msg)


# ----------------------------------------------------------------------------------------------
# The returned hypotheses
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", ALPHAS)
def test_log_probs_and_alpha_match_teacher_forcing(case, alpha):
    """`log_probs`, `scores` and `alpha` belong to the returned tokens (history reordered)."""
    got = case.beams[alpha]
    forced_log_prob, forced_alpha = case.forced[alpha]
    np.testing.assert_allclose(got.log_probs, forced_log_prob, atol=TOL, rtol=0)
    np.testing.assert_allclose(
        got.scores, got.log_probs / penalty(got.length, alpha), atol=1e-5, rtol=1e-5
    )
    for b, n in np.ndindex(got.length.shape):
        L = got.length[b, n]
        msg = f"row {b}, hypothesis {n}"
        np.testing.assert_allclose(
            got.alpha[b, n, :L], forced_alpha[b, n, :L], atol=1e-5, err_msg=msg
        )
        assert np.all(got.alpha[b, n, L:] == 0.0), msg


@pytest.mark.parametrize("alpha", ALPHAS)
def test_hypotheses_are_ordered_distinct_and_padded(case, alpha):
    got = case.beams[alpha]
    assert got.tokens.shape == (len(LENGTHS), BEAM, MAX_LEN)
    assert got.scores.shape == got.log_probs.shape == got.length.shape == (len(LENGTHS), BEAM)
    assert np.all(np.isfinite(got.scores)) and np.all(np.isfinite(got.log_probs))
    assert np.all(np.diff(got.scores, axis=1) <= 0.0), "not best first"
    assert np.all((got.length >= 1) & (got.length <= MAX_LEN))
    for b in range(len(LENGTHS)):
        hyps = {tuple(got.tokens[b, n, : got.length[b, n]]) for n in range(BEAM)}
        assert len(hyps) == BEAM, f"row {b}: duplicate hypotheses"
        for n in range(BEAM):
            L, tokens = got.length[b, n], got.tokens[b, n]
            assert np.all(tokens[L:] == PAD_ID), "tokens after the end"
            assert EOS_ID not in tokens[: L - 1], "end token before the end"
            assert L == MAX_LEN or tokens[L - 1] == EOS_ID, "finished without the end token"
            assert np.all(got.alpha[b, n, L:] == 0.0), "weights after the end"
            if LENGTHS[b] > 0:
                np.testing.assert_allclose(got.alpha[b, n, :L].sum(-1), 1.0, atol=1e-5)


def test_empty_source_gives_no_nan(case):
    empty = np.flatnonzero(LENGTHS == 0)
    assert empty.size
    for got in (case.beam1, *case.beams.values()):
        for field in got:
            assert np.all(np.isfinite(field[empty])), field
        assert np.all(got.alpha[empty] == 0.0)


# ----------------------------------------------------------------------------------------------
# Exhaustive search on a tiny vocabulary
# ----------------------------------------------------------------------------------------------

X_VOCAB, X_LEN = 5, 3  # PAD BOS EOS UNK + 1 symbol; all hypotheses up to 3 tokens
# Beams needed to keep every hypothesis until the last step: the 4^2 live prefixes of length 2
# plus the 1 + 4 finished ones of length 1 and 2. The last step then ranks all 85.
X_BEAM = 24


def all_hypotheses(vocab: int, max_len: int):
    """Every output of at most `max_len` steps: `(tokens [N, max_len], length [N])`."""
    others = [v for v in range(vocab) if v != EOS_ID]
    seqs = [p + (EOS_ID,) for n in range(max_len) for p in itertools.product(others, repeat=n)]
    seqs += list(itertools.product(others, repeat=max_len))  # never finished
    tokens = np.full((len(seqs), max_len), PAD_ID, np.int32)
    for i, seq in enumerate(seqs):
        tokens[i, : len(seq)] = seq
    return tokens, np.array([len(s) for s in seqs], np.int32)


@pytest.fixture(scope="module")
def exhaustive():
    # The lowered EOS bias makes the best hypotheses 1 to 3 tokens long; on row 2 greedy
    # decoding misses the best one.
    model, params = build("luong", "general", X_VOCAB, seed=11, eos_shift=-2.0)
    src, src_len = make_src(LENGTHS[:4], seed=5)
    search = jit_beam(model, X_LEN, X_BEAM, X_BEAM)
    results = {a: jax.device_get(search(params, src, src_len, a)) for a in ALPHAS}
    tokens, length = all_hypotheses(X_VOCAB, X_LEN)
    B, N = len(src), len(tokens)
    apply = jax.jit(functools.partial(models.apply_batch, model))
    log_prob, _ = teacher_forced(
        apply,
        params,
        src,
        src_len,
        np.broadcast_to(tokens, (B, N, X_LEN)),
        np.broadcast_to(length, (B, N)),
    )
    return results, tokens, length, log_prob


@pytest.mark.parametrize("alpha", ALPHAS)
def test_wide_beam_equals_exhaustive_search(exhaustive, alpha):
    results, tokens, length, log_prob = exhaustive
    assert len(tokens) == 85
    got = results[alpha]
    scores = log_prob / penalty(length, alpha)[None]
    for b in range(len(scores)):
        order = np.argsort(-scores[b], kind="stable")[:X_BEAM]
        want = scores[b, order]
        np.testing.assert_allclose(got.scores[b], want, atol=TOL, rtol=0, err_msg=f"row {b}")
        np.testing.assert_allclose(got.log_probs[b], log_prob[b, order], atol=TOL, rtol=0)
        # Same hypotheses in the same order, wherever the order is not a float32 near-tie.
        gaps = np.abs(np.diff(want))
        clear = np.concatenate([[True], gaps > 1e-4]) & np.concatenate([gaps > 1e-4, [True]])
        assert clear[0], "exhaustive best is a near-tie: pick another seed"
        for n in np.flatnonzero(clear):
            np.testing.assert_array_equal(got.tokens[b, n], tokens[order[n]], err_msg=f"{b}, {n}")
            assert got.length[b, n] == length[order[n]]
