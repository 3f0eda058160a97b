"""Tests for the synthetic tasks and the batching pipeline (numpy only)."""

from __future__ import annotations

from collections import Counter

import ml_collections
import numpy as np
import pytest

from attnlab.data.pipeline import (
    TrainStream,
    bucket_length,
    collate,
    eval_batches,
    get_datasets,
)
from attnlab.data.synthetic import (
    FIRST_SYMBOL_ID,
    TASKS,
    Example,
    generate_split,
    make_synthetic_splits,
    make_vocab,
)
from attnlab.data.vocab import BOS_ID, EOS_ID, PAD_ID

SPLIT_KW = dict(
    vocab_size=6,
    min_len=3,
    max_len=9,
    long_min_len=12,
    long_max_len=15,
    num_train=300,
    num_valid=40,
    num_test=40,
    num_long=20,
)


def _key(ex: Example) -> tuple[int, ...]:
    return tuple(ex.src.tolist())


def _splits(task: str = "sort", seed: int = 0) -> dict[str, list[Example]]:
    return make_synthetic_splits(task, seed=seed, **SPLIT_KW)


def _cfg(**overrides) -> ml_collections.FrozenConfigDict:
    cfg = dict(
        name="reverse",
        seed=7,
        batch_size=16,
        eval_batch_size=24,
        bucket_step=4,
        **SPLIT_KW,
    )
    cfg.update(overrides)
    # Frozen: get_datasets must only read the config.
    return ml_collections.FrozenConfigDict(cfg)


# --- synthetic tasks -------------------------------------------------------------------------


@pytest.mark.parametrize("task", sorted(TASKS))
def test_alignment_points_at_the_target_symbol(task):
    rng = np.random.default_rng(0)
    for ex in generate_split(task, 200, 1, 12, 4, rng):
        length = len(ex.src)
        assert ex.src.dtype == ex.tgt.dtype == ex.align.dtype == np.int32
        assert len(ex.tgt) == len(ex.align) == length
        np.testing.assert_array_equal(ex.tgt, ex.src[ex.align])
        # Every source position is used exactly once (all three tasks are permutations).
        np.testing.assert_array_equal(np.sort(ex.align), np.arange(length))
        if task == "copy":
            np.testing.assert_array_equal(ex.align, np.arange(length))
        elif task == "reverse":
            np.testing.assert_array_equal(ex.align, length - 1 - np.arange(length))
        else:
            assert np.all(np.diff(ex.tgt) >= 0)


def test_sort_is_stable():
    src = np.array([7, 5, 7, 4, 5, 7], np.int32)
    tgt, align = TASKS["sort"](src)
    np.testing.assert_array_equal(tgt, [4, 5, 5, 7, 7, 7])
    np.testing.assert_array_equal(align, [3, 1, 4, 0, 2, 5])
    # Property version: equal target symbols map to increasing source positions.
    for ex in generate_split("sort", 200, 2, 12, 3, np.random.default_rng(1)):
        same = ex.tgt[1:] == ex.tgt[:-1]
        assert np.all(np.diff(ex.align)[same] > 0)


def test_lengths_and_symbols_in_range():
    splits = _splits()
    vocab = make_vocab(SPLIT_KW["vocab_size"])
    lo, hi = FIRST_SYMBOL_ID, FIRST_SYMBOL_ID + SPLIT_KW["vocab_size"]
    for name, split in splits.items():
        long = name == "long"
        min_len = SPLIT_KW["long_min_len" if long else "min_len"]
        max_len = SPLIT_KW["long_max_len" if long else "max_len"]
        lengths = [len(ex.src) for ex in split]
        assert min(lengths) >= min_len and max(lengths) <= max_len
        for ex in split:
            assert np.all((ex.src >= lo) & (ex.src < hi))
            # Ids and the vocabulary agree.
            np.testing.assert_array_equal(vocab.encode(vocab.decode(ex.src)), ex.src)
    # Both ends of the (inclusive) range are reachable.
    assert {len(ex.src) for ex in splits["train"]} == set(range(3, 10))
    assert len(splits["validation"]) == SPLIT_KW["num_valid"]
    assert len(splits["long"]) == SPLIT_KW["num_long"]


def test_vocab_naming():
    assert make_vocab(10).tokens[FIRST_SYMBOL_ID:] == [str(i) for i in range(10)]
    big = make_vocab(30)
    assert big.size == 30 + FIRST_SYMBOL_ID
    assert big.tokens[FIRST_SYMBOL_ID:][:2] == ["s0", "s1"]


def test_splits_reproducible_and_seed_dependent():
    a, b, c = _splits(seed=3), _splits(seed=3), _splits(seed=4)
    for name in a:
        assert [_key(ex) for ex in a[name]] == [_key(ex) for ex in b[name]]
        assert [_key(ex) for ex in a[name]] != [_key(ex) for ex in c[name]]
    # Each split has its own stream: resizing one split leaves the others unchanged.
    d = make_synthetic_splits("sort", seed=3, **{**SPLIT_KW, "num_valid": 10})
    assert [_key(ex) for ex in d["test"]] == [_key(ex) for ex in a["test"]]


def test_heldout_splits_exclude_training_sources_and_are_unique():
    # A small space (2 symbols, lengths 3..6: 120 sources) makes collisions likely.
    splits = make_synthetic_splits("copy", 2, 3, 6, 7, 8, 60, 20, 20, 10, seed=0)
    train = {_key(ex) for ex in splits["train"]}
    for name in ("validation", "test", "long"):
        keys = [_key(ex) for ex in splits[name]]
        assert len(set(keys)) == len(keys)
        assert not train & set(keys)


def test_generate_split_respects_exclude_exhaustively():
    # Space of exactly 2 + 4 = 6 sources; exclude two, the remaining four must all be drawn.
    s = FIRST_SYMBOL_ID
    exclude = {(s,), (s, s + 1)}
    got = generate_split("copy", 4, 1, 2, 2, np.random.default_rng(0), exclude=set(exclude))
    keys = {_key(ex) for ex in got}
    assert len(keys) == 4 and not keys & exclude
    with pytest.raises(ValueError, match="too small"):
        generate_split("copy", 5, 1, 2, 2, np.random.default_rng(0), exclude=set(exclude))


def test_unknown_task():
    with pytest.raises(ValueError, match="unknown.*copy"):
        generate_split("shuffle", 3, 1, 2, 3, np.random.default_rng(0))
    with pytest.raises(ValueError, match="reverse"):
        make_synthetic_splits("shuffle", seed=0, **SPLIT_KW)


def test_too_small_sequence_space():
    # 3 symbols of length 2 give 9 sources; validation cannot hold 10 distinct ones.
    with pytest.raises(ValueError, match="too small"):
        make_synthetic_splits("copy", 3, 2, 2, 3, 3, 0, 10, 0, 0, seed=0)


# --- pipeline ----------------------------------------------------------------------------------


def test_bucket_length():
    assert [bucket_length(n, 4) for n in (0, 1, 4, 5, 8, 9)] == [4, 4, 4, 8, 8, 12]
    with pytest.raises(ValueError):
        bucket_length(3, 0)


def _check_batch(batch, examples, step):
    b = batch["src"].shape[0]
    for key in ("src_len", "tgt_len"):
        assert batch[key].shape == (b,)
    t_pad = batch["tgt_in"].shape[1]
    assert batch["tgt_out"].shape == batch["align"].shape == (b, t_pad)
    assert batch["src"].shape[1] % step == 0 and t_pad % step == 0
    assert all(v.dtype == np.int32 for v in batch.values())
    # Padded to the smallest bucket that fits the longest row.
    assert batch["src"].shape[1] == bucket_length(int(batch["src_len"].max()), step)
    assert t_pad == bucket_length(int(batch["tgt_len"].max()), step)
    for i in range(b):
        s, t = batch["src_len"][i], batch["tgt_len"][i]
        if i >= len(examples):
            assert s == t == 0
            assert np.all(batch["src"][i] == PAD_ID) and np.all(batch["tgt_in"][i] == PAD_ID)
            assert np.all(batch["tgt_out"][i] == PAD_ID) and np.all(batch["align"][i] == -1)
            continue
        ex = examples[i]
        assert s == len(ex.src) and t == len(ex.tgt) + 1
        np.testing.assert_array_equal(batch["src"][i, :s], ex.src)
        assert np.all(batch["src"][i, s:] == PAD_ID)
        np.testing.assert_array_equal(batch["tgt_in"][i, :t], np.r_[BOS_ID, ex.tgt])
        np.testing.assert_array_equal(batch["tgt_out"][i, :t], np.r_[ex.tgt, EOS_ID])
        # Teacher forcing: the input at step k+1 is the output of step k.
        np.testing.assert_array_equal(batch["tgt_in"][i, 1:t], batch["tgt_out"][i, : t - 1])
        assert np.all(batch["tgt_in"][i, t:] == PAD_ID)
        assert np.all(batch["tgt_out"][i, t:] == PAD_ID)
        np.testing.assert_array_equal(batch["align"][i, : t - 1], ex.align)
        assert np.all(batch["align"][i, t - 1 :] == -1)  # EOS step and padding


def test_collate_shapes_padding_and_shift():
    examples = _splits("reverse")["validation"][:5]
    _check_batch(collate(examples, 4), examples, 4)
    padded = collate(examples, 5, batch_size=8)
    assert padded["src"].shape[0] == 8
    _check_batch(padded, examples, 5)
    with pytest.raises(ValueError):
        collate(examples, 4, batch_size=3)


def test_collate_without_alignment():
    ex = Example(np.array([4, 5], np.int32), np.array([6, 7, 8], np.int32), None)
    batch = collate([ex], 4)
    assert np.all(batch["align"] == -1)
    assert batch["tgt_len"][0] == 4 and batch["tgt_in"].shape == (1, 4)


def test_train_stream_is_a_pure_function_of_step():
    train = _splits()["train"]
    stream = TrainStream(train, 16, 4, seed=1)
    nb = stream.batches_per_epoch
    assert nb == len(train) // 16
    steps = [0, 1, nb - 1, nb, 2 * nb + 3, 5]  # includes going back to an earlier epoch
    first = [stream.batch(s) for s in steps]
    for s, batch in zip(steps, first, strict=True):
        resumed = TrainStream(train, 16, 4, seed=1).batch(s)
        for key in batch:
            np.testing.assert_array_equal(batch[key], resumed[key])
    # Same position in different epochs, or a different seed: different batches.
    assert not np.array_equal(stream.batch(0)["src"], stream.batch(nb)["src"])
    assert not np.array_equal(stream.epoch_plan(0), stream.epoch_plan(1))
    other = TrainStream(train, 16, 4, seed=2)
    assert not np.array_equal(stream.epoch_plan(0), other.epoch_plan(0))


def test_train_stream_covers_each_example_once_per_epoch():
    train = _splits()["train"]
    stream = TrainStream(train, 16, 4, seed=0)
    nb = stream.batches_per_epoch
    for epoch in range(2):
        plan = stream.epoch_plan(epoch)
        assert plan.shape == (nb, 16)
        counts = Counter(plan.ravel().tolist())
        assert len(counts) == nb * 16 and set(counts.values()) == {1}
        assert len(train) - len(counts) == len(train) % 16  # only the remainder is dropped
        for b in range(nb):
            batch = stream.batch(epoch * nb + b)
            _check_batch(batch, [train[i] for i in plan[b]], 4)
            assert batch["src"].shape[0] == 16 and np.all(batch["tgt_len"] > 0)


def test_train_stream_needs_a_full_batch():
    with pytest.raises(ValueError, match="fewer than batch_size"):
        TrainStream(_splits()["validation"], 64, 4, seed=0)


def test_eval_batches_cover_every_example_once():
    examples = _splits()["test"]
    batches = eval_batches(examples, 12, 4)
    assert len(batches) == -(-len(examples) // 12)
    rows = []
    for b, batch in enumerate(batches):
        assert batch["src"].shape[0] == 12
        chunk = examples[b * 12 : (b + 1) * 12]
        _check_batch(batch, chunk, 4)
        rows += [tuple(batch["src"][i, : batch["src_len"][i]].tolist()) for i in range(len(chunk))]
    assert rows == [_key(ex) for ex in examples]
    assert sum(int((batch["tgt_len"] > 0).sum()) for batch in batches) == len(examples)


def test_eval_batches_empty_split():
    with pytest.raises(ValueError, match="empty split"):
        eval_batches([], 8, 4)


def test_get_datasets():
    cfg = _cfg()
    data = get_datasets(cfg, seed=0)
    assert data.src_vocab is data.tgt_vocab
    assert data.src_vocab.size == SPLIT_KW["vocab_size"] + FIRST_SYMBOL_ID
    assert set(data.eval) == {"validation", "test", "long"}
    assert set(data.examples) == {"train", "validation", "test", "long"}
    assert data.max_src_len == max(len(ex.src) for ex in data.examples["long"])
    assert data.max_tgt_len == data.max_src_len + 1  # reverse keeps the length; +1 for EOS
    assert data.train.batches_per_epoch == SPLIT_KW["num_train"] // 16
    assert all(b["src"].shape[0] == 24 for bs in data.eval.values() for b in bs)
    # Same data seed, different shuffling seed: same data, different order.
    other = get_datasets(cfg, seed=1)
    assert [_key(ex) for ex in other.examples["test"]] == [_key(ex) for ex in data.examples["test"]]
    assert not np.array_equal(other.train.batch(0)["src"], data.train.batch(0)["src"])
    # No long split when num_long == 0.
    short = get_datasets(_cfg(num_long=0), seed=0)
    assert set(short.eval) == {"validation", "test"} and "long" not in short.examples
    assert short.max_src_len <= SPLIT_KW["max_len"]
