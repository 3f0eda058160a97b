"""Padded numpy batches with a fixed set of shapes, and deterministic training order.

A batch is a dict of numpy arrays (`B` rows, `S`/`T` padded lengths):

| key       | shape      | content                                                          |
|-----------|------------|------------------------------------------------------------------|
| `src`     | `[B, S]`   | source ids, `PAD_ID` padded                                      |
| `src_len` | `[B]`      | source lengths                                                   |
| `tgt_in`  | `[B, T]`   | `[BOS] + tgt`, padded (decoder inputs, teacher forcing)          |
| `tgt_out` | `[B, T]`   | `tgt + [EOS]`, padded (decoder targets)                          |
| `tgt_len` | `[B]`      | `len(tgt) + 1` (counts the EOS)                                  |
| `align`   | `[B, T]`   | gold source position per target step; -1 at EOS, padding, or     |
|           |            | when the example has no alignment                                |

All arrays are int32. `S` and `T` are bucketed, `bucket_length(n, step) = step * ceil(n / step)`
(at least `step`), so a jitted step compiles once per bucket pair rather than once per batch.
Rows that only fill up a final evaluation batch are empty: lengths 0, all `PAD_ID`, `align` -1;
models treat an empty source as zero context and metrics weight by `tgt_len`, so they count for
nothing.

`TrainStream.batch(step)` is a pure function of `(examples, seed, step)`, so resuming at step `N`
replays exactly the batches of an uninterrupted run without saving iterator state.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

from attnlab.data import corpora
from attnlab.data.synthetic import Example, make_synthetic_splits, make_vocab
from attnlab.data.vocab import BOS_ID, EOS_ID, PAD_ID, Vocab

# Batches whose source lengths are sorted together within an epoch: large enough that batches
# hold similar lengths (little padding), small enough that the order stays well mixed.
SORT_CHUNK_BATCHES = 32

EVAL_SPLITS = ("validation", "test", "long")


def bucket_length(n: int, step: int) -> int:
    """Padded length for a batch whose longest sequence has `n` tokens: `step * ceil(n / step)`,
    and at least `step` (so an all-empty batch still has a valid shape)."""
    if step < 1:
        raise ValueError(f"bucket_step must be >= 1, got {step}")
    return step * max(1, math.ceil(n / step))


def collate(
    examples: Sequence[Example], bucket_step: int, batch_size: int | None = None
) -> dict[str, np.ndarray]:
    """Pads `examples` into one batch (see the module docstring for the keys).

    Args:
      examples: the rows, in order.
      bucket_step: padded lengths are multiples of this.
      batch_size: if given, empty rows are appended up to `batch_size` rows (`B = batch_size`);
        otherwise `B = len(examples)`.

    Returns:
      dict of int32 arrays: `src [B, S]`, `src_len [B]`, `tgt_in`, `tgt_out`, `align [B, T]`,
      `tgt_len [B]`, where `S = bucket_length(max len(src))`, `T = bucket_length(max len(tgt)+1)`.
    """
    n = len(examples)
    if batch_size is None:
        if n == 0:
            raise ValueError("cannot collate an empty list of examples without a batch_size")
        batch_size = n
    if n > batch_size:
        raise ValueError(f"{n} examples do not fit in a batch of {batch_size}")

    src_lens = np.zeros(batch_size, np.int32)
    tgt_lens = np.zeros(batch_size, np.int32)
    src_lens[:n] = [len(ex.src) for ex in examples]
    # +1: the target side carries one extra token (BOS on the input, EOS on the output).
    tgt_lens[:n] = [len(ex.tgt) + 1 for ex in examples]
    s_pad = bucket_length(int(src_lens.max(initial=0)), bucket_step)
    t_pad = bucket_length(int(tgt_lens.max(initial=0)), bucket_step)

    src = np.full((batch_size, s_pad), PAD_ID, np.int32)
    tgt_in = np.full((batch_size, t_pad), PAD_ID, np.int32)
    tgt_out = np.full((batch_size, t_pad), PAD_ID, np.int32)
    align = np.full((batch_size, t_pad), -1, np.int32)
    for i, ex in enumerate(examples):
        length = len(ex.tgt)
        src[i, : len(ex.src)] = ex.src
        tgt_in[i, 0] = BOS_ID
        tgt_in[i, 1 : length + 1] = ex.tgt
        tgt_out[i, :length] = ex.tgt
        tgt_out[i, length] = EOS_ID
        if ex.align is not None:
            align[i, :length] = ex.align
    return {
        "src": src,
        "src_len": src_lens,
        "tgt_in": tgt_in,
        "tgt_out": tgt_out,
        "tgt_len": tgt_lens,
        "align": align,
    }


def stack_batches(batches: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stacks batches of equal row count along a new leading axis `[K, B, ...]`, padding every
    length axis to the longest (PAD ids, alignment -1): one batch per seed for a vmapped step."""
    out = {}
    for key in batches[0]:
        arrays = [b[key] for b in batches]
        width = max(a.shape[1] for a in arrays) if arrays[0].ndim == 2 else None
        fill = -1 if key == "align" else PAD_ID
        if width is not None:
            arrays = [
                np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=fill) for a in arrays
            ]
        out[key] = np.stack(arrays)
    return out


class TrainStream:
    """Full training batches indexed by global step, reproducible without iterator state.

    Epoch `e = step // batches_per_epoch` is planned with `np.random.default_rng([seed, e])`:
    shuffle the examples, drop the remainder (`len(examples) % batch_size` random examples), sort
    by source length (stable) inside chunks of `SORT_CHUNK_BATCHES` batches to reduce padding, cut
    into batches, and shuffle the batch order. The current epoch's plan is cached, so consecutive
    steps cost O(batch).
    """

    def __init__(self, examples: Sequence[Example], batch_size: int, bucket_step: int, seed: int):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if len(examples) < batch_size:
            raise ValueError(
                f"training split has {len(examples)} examples, fewer than batch_size={batch_size}; "
                "no full batch can be formed"
            )
        bucket_length(1, bucket_step)  # validates bucket_step early
        self.examples = list(examples)
        self.batch_size = batch_size
        self.bucket_step = bucket_step
        self.seed = seed
        self._src_lens = np.array([len(ex.src) for ex in self.examples])
        self._epoch: int | None = None
        self._plan: np.ndarray | None = None

    @property
    def batches_per_epoch(self) -> int:
        """Number of full batches per epoch (the remainder is dropped)."""
        return len(self.examples) // self.batch_size

    def epoch_plan(self, epoch: int) -> np.ndarray:
        """Example indices of every batch of `epoch`: int `[batches_per_epoch, batch_size]`."""
        if self._epoch == epoch and self._plan is not None:
            return self._plan
        rng = np.random.default_rng([self.seed, epoch])
        nb, bs = self.batches_per_epoch, self.batch_size
        order = rng.permutation(len(self.examples))[: nb * bs]
        chunk = SORT_CHUNK_BATCHES * bs
        for start in range(0, len(order), chunk):
            part = order[start : start + chunk]
            order[start : start + chunk] = part[np.argsort(self._src_lens[part], kind="stable")]
        plan = order.reshape(nb, bs)[rng.permutation(nb)]
        self._epoch, self._plan = epoch, plan
        return plan

    def batch(self, step: int) -> dict[str, np.ndarray]:
        """The batch of global step `step` (`>= 0`), a pure function of (examples, seed, step)."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        epoch, index = divmod(step, self.batches_per_epoch)
        rows = self.epoch_plan(epoch)[index]
        return collate([self.examples[i] for i in rows], self.bucket_step)


def eval_batches(
    examples: Sequence[Example], batch_size: int, bucket_step: int
) -> list[dict[str, np.ndarray]]:
    """All `examples` in their given order, `batch_size` rows per batch.

    Row `r` of batch `b` is `examples[b * batch_size + r]`; the last batch is filled with empty
    rows (`tgt_len == 0`) up to `batch_size`, so every batch has `B = batch_size`.
    """
    if len(examples) == 0:
        raise ValueError("cannot build evaluation batches from an empty split")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return [
        collate(examples[i : i + batch_size], bucket_step, batch_size)
        for i in range(0, len(examples), batch_size)
    ]


@dataclasses.dataclass
class Datasets:
    """Everything a run needs from the data.

    Attributes:
      src_vocab, tgt_vocab: vocabularies (the same object for synthetic tasks).
      train: the training stream.
      eval: split name ("validation", "test", "long" when present) -> its batches.
      examples: split name -> its examples ("train" included).
      max_src_len: longest source over all splits.
      max_tgt_len: longest target over all splits, counting the EOS.
    """

    src_vocab: Vocab
    tgt_vocab: Vocab
    train: TrainStream
    eval: dict[str, list[dict[str, np.ndarray]]]
    examples: dict[str, list[Example]]
    max_src_len: int
    max_tgt_len: int
    # Real data sets only: reference token lists per evaluated example (g2p: every listed
    # pronunciation), how to turn target tokens into text, which text metrics apply ("g2p",
    # "bleu" or ""), and what the length filter dropped or cut per split.
    references: dict[str, list[list[list[str]]]] | None = None
    detokenize: Callable[[list[str]], str] | None = None
    text_metrics: str = ""
    filter_counts: dict[str, dict[str, int]] | None = None
    src_tokenize: Callable[[str], list[str]] | None = None


def get_datasets(data_cfg, seed: int) -> Datasets:
    """Builds the datasets described by `data_cfg` (read only, never modified).

    Args:
      data_cfg: a ConfigDict with `task` ("copy" | "reverse" | "sort"), `vocab_size`, `min_len`,
        `max_len`, `long_min_len`, `long_max_len`, `num_train`, `num_valid`, `num_test`,
        `num_long`, `batch_size`, `eval_batch_size`, `bucket_step` and `seed` (data generation).
      seed: the training-order seed (independent of `data_cfg.seed`).

    Returns:
      `Datasets`; the "long" split is omitted when `num_long == 0` and for real data sets
      (`data_cfg.name` g2p, dates or tfds:..., read by `attnlab.data.corpora`).
    """
    if corpora.kind(data_cfg.name):
        return _real_datasets(data_cfg, seed)
    splits = make_synthetic_splits(
        task=data_cfg.name,
        vocab_size=data_cfg.vocab_size,
        min_len=data_cfg.min_len,
        max_len=data_cfg.max_len,
        long_min_len=data_cfg.long_min_len,
        long_max_len=data_cfg.long_max_len,
        num_train=data_cfg.num_train,
        num_valid=data_cfg.num_valid,
        num_test=data_cfg.num_test,
        num_long=data_cfg.num_long,
        seed=data_cfg.seed,
    )
    if data_cfg.num_long == 0:
        del splits["long"]
    vocab = make_vocab(data_cfg.vocab_size)
    return _assemble(splits, vocab, vocab, data_cfg, seed)


def _assemble(splits, src_vocab, tgt_vocab, data_cfg, seed: int, **extra) -> Datasets:
    """`Datasets` from encoded splits: the training stream, padded evaluation batches and the
    longest lengths; `extra`: the real-data fields of `Datasets`."""
    train = TrainStream(splits["train"], data_cfg.batch_size, data_cfg.bucket_step, seed)
    evals = {
        name: eval_batches(splits[name], data_cfg.eval_batch_size, data_cfg.bucket_step)
        for name in EVAL_SPLITS
        if name in splits
    }
    all_examples = [ex for split in splits.values() for ex in split]
    return Datasets(
        src_vocab=src_vocab,
        tgt_vocab=tgt_vocab,
        train=train,
        eval=evals,
        examples=splits,
        max_src_len=max(len(ex.src) for ex in all_examples),
        max_tgt_len=max(len(ex.tgt) + 1 for ex in all_examples),
        **extra,
    )


def _real_datasets(data_cfg, seed: int) -> Datasets:
    """`Datasets` of a real data set: tokenized by `corpora.load_corpus`, then padded like the
    synthetic tasks (examples without a gold alignment get -1 at every step)."""
    corpus = corpora.load_corpus(data_cfg)
    src_vocab, tgt_vocab = corpus.src_tokenizer.vocab, corpus.tgt_tokenizer.vocab
    splits = {
        name: corpora.encode_split(split, src_vocab, tgt_vocab)
        for name, split in corpus.splits.items()
    }
    return _assemble(
        splits,
        src_vocab,
        tgt_vocab,
        data_cfg,
        seed,
        references={name: corpus.splits[name].refs for name in EVAL_SPLITS if name in splits},
        detokenize=corpus.tgt_tokenizer.decode,
        text_metrics=corpus.metrics,
        filter_counts=corpus.filter_counts,
        src_tokenize=corpus.src_tokenizer.encode,
    )
