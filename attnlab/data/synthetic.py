"""Synthetic sequence tasks with gold alignments: `copy`, `reverse` and `sort`.

A source is a sequence of `L` symbols drawn uniformly from a vocabulary of `vocab_size` symbols
(no special tokens). Each task maps it to a target of the same length and a gold alignment
`align[t]`, the source position that target step `t` should attend to, so `tgt[t] ==
src[align[t]]` always:

| task      | target                   | `align[t]`                                       |
|-----------|--------------------------|--------------------------------------------------|
| `copy`    | `src`                    | `t`                                              |
| `reverse` | `src[::-1]`              | `L - 1 - t`                                      |
| `sort`    | `src` sorted, **stable** | source position of `tgt[t]` (stable `argsort`)   |

Symbol naming (`symbol_names`): `"0".."9"` when `vocab_size <= 10`, otherwise `"s0".."s{n-1}"`.
Symbol `i` has id `FIRST_SYMBOL_ID + i`, after the reserved ids of `attnlab.data.vocab`, so
sorting ids sorts symbols by their index.

`make_synthetic_splits` draws "train", "validation", "test" and "long" splits, each from its own
random generator, so any split can be regenerated on its own; the held-out splits never contain a
training source.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from attnlab.data.vocab import SPECIALS, Vocab

# Symbol ids start right after the reserved ids (`<pad> <s> </s> <unk>`).
FIRST_SYMBOL_ID = len(SPECIALS)

# Per-split stream index `k` of `np.random.default_rng([seed, k])`; fixed so that changing one
# split's size never changes the contents of another split.
SPLIT_STREAMS = {"train": 0, "validation": 1, "test": 2, "long": 3}

# Rejection sampling of distinct sources gives up after this many draws per requested example
# (plus a constant), so a nearly exhausted sequence space fails with an error instead of looping.
_DRAWS_PER_EXAMPLE = 50
_MIN_DRAWS = 10_000


class Example(NamedTuple):
    """One sequence pair.

    Attributes:
      src: int32 `[L]` source ids (no BOS/EOS).
      tgt: int32 `[L']` target ids (no BOS/EOS).
      align: int32 `[L']` gold source position of each target step, or `None` for data without
        alignments (the pipeline then marks every step as undefined).
    """

    src: np.ndarray
    tgt: np.ndarray
    align: np.ndarray | None


def _copy(src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """copy: `src [L] -> (tgt [L], align [L])` with `tgt = src`, `align[t] = t`."""
    src = np.asarray(src, dtype=np.int32)
    return src.copy(), np.arange(len(src), dtype=np.int32)


def _reverse(src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """reverse: `src [L] -> (tgt [L], align [L])` with `tgt = src[::-1]`, `align[t] = L-1-t`."""
    src = np.asarray(src, dtype=np.int32)
    align = np.arange(len(src) - 1, -1, -1, dtype=np.int32)
    return src[align], align


def _sort(src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sort: `src [L] -> (tgt [L], align [L])`, a stable ascending sort.

    `align[t]` is the source position of `tgt[t]`; equal symbols keep their source order, so their
    alignments increase.
    """
    src = np.asarray(src, dtype=np.int32)
    align = np.argsort(src, kind="stable").astype(np.int32)
    return src[align], align


TASKS: dict[str, Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    "copy": _copy,
    "reverse": _reverse,
    "sort": _sort,
}


def get_task(task: str) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The task function `src [L] -> (tgt [L], align [L])`; ValueError for an unknown name."""
    if task not in TASKS:
        raise ValueError(f"unknown synthetic task {task!r}; valid tasks: {sorted(TASKS)}")
    return TASKS[task]


def symbol_names(vocab_size: int) -> list[str]:
    """The `vocab_size` symbol strings: digits if `vocab_size <= 10`, else `s0, s1, ...`."""
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
    if vocab_size <= 10:
        return [str(i) for i in range(vocab_size)]
    return [f"s{i}" for i in range(vocab_size)]


def make_vocab(vocab_size: int) -> Vocab:
    """The vocabulary of a synthetic task: the reserved tokens, then `symbol_names(vocab_size)`."""
    return Vocab(symbol_names(vocab_size))


def _check_lengths(min_len: int, max_len: int) -> None:
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}")


def generate_split(
    task: str,
    num: int,
    min_len: int,
    max_len: int,
    vocab_size: int,
    rng: np.random.Generator,
    exclude: set[tuple[int, ...]] | None = None,
) -> list[Example]:
    """Draws `num` examples of `task`.

    Each source has a length uniform in `[min_len, max_len]` (inclusive) and symbols uniform over
    the vocabulary; ids are `FIRST_SYMBOL_ID + symbol index`.

    Args:
      task: a name in `TASKS`.
      num: number of examples (0 gives an empty list).
      min_len, max_len: inclusive source length range, `1 <= min_len <= max_len`.
      vocab_size: number of symbols.
      rng: the generator to draw from (consumed).
      exclude: source tuples (Python ints, the source ids) that must not be drawn. When given (even
        empty), the drawn sources are also distinct from each other; when `None`, duplicates are
        allowed. `exclude` itself is not modified.

    Returns:
      `num` `Example`s with int32 `src [L]`, `tgt [L]`, `align [L]`.

    Raises:
      ValueError: unknown task, bad lengths, or too few distinct sources left to draw `num` of them.
    """
    fn = get_task(task)
    _check_lengths(min_len, max_len)
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
    if num < 0:
        raise ValueError(f"num must be >= 0, got {num}")
    if num == 0:
        return []

    unique = exclude is not None
    if unique:
        space = sum(vocab_size**n for n in range(min_len, max_len + 1))
        taken = sum(1 for s in exclude if min_len <= len(s) <= max_len)
        if num > space - taken:
            raise ValueError(
                f"sequence space too small: {task!r} with vocab_size={vocab_size} and lengths "
                f"[{min_len}, {max_len}] has {space} sources, {taken} of them excluded, so "
                f"{num} distinct examples cannot be drawn"
            )

    max_draws = _DRAWS_PER_EXAMPLE * num + _MIN_DRAWS
    seen: set[tuple[int, ...]] = set()
    examples: list[Example] = []
    draws = 0
    while len(examples) < num:
        if draws >= max_draws:
            raise ValueError(
                f"sequence space too small: drew {draws} sources of {task!r} (vocab_size="
                f"{vocab_size}, lengths [{min_len}, {max_len}]) but found only {len(examples)} of "
                f"{num} distinct, non-excluded ones; use a larger vocabulary, longer sequences or "
                "fewer examples"
            )
        # Vectorised draws in rounds; oversample when rejecting so rounds stay few.
        need = num - len(examples)
        m = min(max(2 * need, 16) if unique else need, max_draws - draws)
        lengths = rng.integers(min_len, max_len + 1, size=m)
        symbols = rng.integers(0, vocab_size, size=(m, max_len), dtype=np.int32) + FIRST_SYMBOL_ID
        draws += m
        for length, row in zip(lengths, symbols, strict=True):
            src = row[:length].copy()
            if unique:
                key = tuple(src.tolist())
                if key in exclude or key in seen:
                    continue
                seen.add(key)
            tgt, align = fn(src)
            examples.append(Example(src, tgt, align))
            if len(examples) == num:
                break
    return examples


def make_synthetic_splits(
    task: str,
    vocab_size: int,
    min_len: int,
    max_len: int,
    long_min_len: int,
    long_max_len: int,
    num_train: int,
    num_valid: int,
    num_test: int,
    num_long: int,
    seed: int,
) -> dict[str, list[Example]]:
    """The four splits of a synthetic task.

    "train", "validation" and "test" have source lengths in `[min_len, max_len]`; "long" has
    lengths in `[long_min_len, long_max_len]` (length generalisation). Split `name` is drawn from
    `np.random.default_rng([seed, SPLIT_STREAMS[name]])`. "train" may contain duplicates;
    "validation", "test" and "long" are each duplicate-free and contain no training source (they
    are not made disjoint from each other).

    Returns:
      `{"train", "validation", "test", "long"}` -> list of `Example` (a split is empty when its
      `num_*` is 0).
    """
    get_task(task)
    _check_lengths(long_min_len, long_max_len)

    def rng(name: str) -> np.random.Generator:
        return np.random.default_rng([seed, SPLIT_STREAMS[name]])

    train = generate_split(task, num_train, min_len, max_len, vocab_size, rng("train"))
    train_sources = {tuple(ex.src.tolist()) for ex in train}
    splits = {"train": train}
    for name, num, lo, hi in (
        ("validation", num_valid, min_len, max_len),
        ("test", num_test, min_len, max_len),
        ("long", num_long, long_min_len, long_max_len),
    ):
        splits[name] = generate_split(
            task, num, lo, hi, vocab_size, rng(name), exclude=train_sources
        )
    return splits
