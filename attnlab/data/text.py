"""Natural-language translation data: TFDS translation datasets, tokenizers and vocabularies.

Loading (no TensorFlow needed):

- Datasets are named `tfds:<name>[/<config>][:<version>]`, e.g. `tfds:wmt14_translate/de-en` or
  `tfds:ted_hrlr_translate/pt_to_en`; `parse_tfds_name` checks and strips the prefix.
- `load_pairs` reads one split into memory as `(source, target)` string pairs through
  `builder.as_data_source` (array_record random access; `tfds.load` needs TensorFlow). TFDS
  translation features are language codes (`de`/`en`, `pt`/`en`); the source and target keys
  default to the dataset's `supervised_keys`.
- attnlab never downloads: a dataset that is not prepared under `data_dir` raises
  `DatasetNotPreparedError`, whose message gives the command to prepare it on a machine with
  internet access (`tfds.data_source` would otherwise try to download and, offline, retry the
  network for minutes before failing).

Tokenizers share one interface, so the pipeline can use either: `encode(text) -> list[str]`
pieces, `decode(pieces) -> str`, `.vocab` (an `attnlab.data.vocab.Vocab` over the pieces, with
the reserved ids 0-3 first), and `encode_ids(text) -> int32 [L]` / `decode_ids(ids) -> str`.

- `CharTokenizer`: characters, vocabulary from `char_vocab`.
- `SubwordTokenizer`: a SentencePiece unigram or BPE model from `train_sentencepiece`, trained
  in-process. SentencePiece's own `<s>`/`</s>`/`<pad>` are disabled and its `<unk>` is our UNK,
  so the reserved ids line up with the rest of attnlab.

Unknown symbols map to `UNK_ID` and are counted in `tokenizer.vocab.num_unknown`.

`length_filter` drops (or truncates) pairs over the length limits and drops empty ones,
returning counts so the caller can log how much data was lost.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm
import tensorflow_datasets as tfds

from attnlab.config_lib import ConfigError
from attnlab.data.vocab import SPECIALS, Vocab

TFDS_PREFIX = "tfds:"

# `<name>[/<config>][:<major>.<minor>.<patch>]`, the TFDS naming grammar (configs such as
# "de-en", "pt_to_en").
_TFDS_NAME = re.compile(r"[a-z][a-z0-9_]*(/[A-Za-z0-9][A-Za-z0-9_.+\-]*)?(:\d+\.\d+\.\d+)?")

# Records per batched read: `__getitems__` is 10-75x faster than one read per record.
READ_CHUNK = 4096


class DatasetNotPreparedError(FileNotFoundError):
    """A TFDS dataset has no prepared (array_record) data under the data directory."""


def parse_tfds_name(spec: str) -> str:
    """`"tfds:wmt14_translate/de-en"` -> `"wmt14_translate/de-en"` (the TFDS name with config).

    Raises:
      ValueError: if `spec` lacks the `tfds:` prefix or the rest is not a TFDS name
        `<name>[/<config>][:<version>]` (lower-case name; e.g. no spaces or extra slashes).
    """
    if not isinstance(spec, str) or not spec.startswith(TFDS_PREFIX):
        raise ValueError(
            f"dataset {spec!r} is not a TFDS name: expected '{TFDS_PREFIX}<name>[/<config>]', "
            f"e.g. '{TFDS_PREFIX}wmt14_translate/de-en'"
        )
    name = spec[len(TFDS_PREFIX) :]
    if not _TFDS_NAME.fullmatch(name):
        raise ValueError(
            f"malformed TFDS dataset name {name!r} in {spec!r}: expected "
            "'<name>[/<config>][:<version>]' with a lower-case name, e.g. "
            f"'{TFDS_PREFIX}ted_hrlr_translate/pt_to_en'"
        )
    return name


@functools.cache
def _register_translation_builders() -> None:
    """Imports TFDS's legacy translation builders (`wmt*_translate`, `opus`, `para_crawl`, ...).

    TFDS registers them by importing its legacy dataset modules in one loop that stops at the
    first ImportError; in tfds 4.9.10 `nearest_neighbors` needs `h5py`, so without it every
    later module, `translate` included, is skipped and `tfds.builder("wmt14_translate/de-en")`
    fails with "not found". Importing the module directly registers them.
    """
    with contextlib.suppress(ImportError):  # a trimmed TFDS build: other datasets still work
        importlib.import_module("tensorflow_datasets.translate")


def prepare_command(name: str, data_dir: str | None = None) -> str:
    """The shell command that downloads and prepares TFDS dataset `name` as array_record."""
    target = repr(str(data_dir)) if data_dir is not None else "None"
    return (
        'python -c "import tensorflow_datasets as tfds; '
        f"tfds.builder({name!r}, data_dir={target})"
        ".download_and_prepare(file_format='array_record')\""
    )


def _not_prepared_message(name: str, data_dir: str | None, searched: Any) -> str:
    shown = data_dir if data_dir is not None else "/path/to/tensorflow_datasets"
    return (
        f"TFDS dataset {name!r} is not prepared under {str(searched)!r}, and attnlab does not "
        "download data. On a machine with internet access, run:\n\n"
        f"    {prepare_command(name, shown)}\n\n"
        f"then copy that directory here and pass it as --config.data.data_dir={shown} (in "
        f"Python: data_dir={str(shown)!r}) or set TFDS_DATA_DIR={shown}."
    )


def open_split(builder, name: str, split: str, data_dir: str | None):
    """`builder.as_data_source(split)`, with TFDS's failures turned into errors that say what
    to do: `DatasetNotPreparedError` when the data are missing or prepared in a format that
    needs TensorFlow, `ValueError` for an unknown split.

    Reading is tried first (not `is_prepared()`): `tfds.testing.mock_data` serves data from
    builders that report unprepared. TFDS signals the failures this way: an unprepared builder
    falls back to the tfrecord format, which has no random access (NotImplementedError, also
    for data prepared as tfrecord), and an unknown split is a KeyError.
    """
    try:
        return builder.as_data_source(split=split)
    except (NotImplementedError, KeyError) as e:
        if not builder.is_prepared():
            raise DatasetNotPreparedError(
                _not_prepared_message(name, data_dir, builder.data_dir)
            ) from e
        if isinstance(e, NotImplementedError):
            raise DatasetNotPreparedError(
                f"TFDS dataset {name!r} is prepared under {builder.data_dir!r} in the "
                f"{builder.info.file_format} format, which cannot be read without TensorFlow; "
                "prepare it again as array_record into another data_dir:\n\n"
                f"    {prepare_command(name, data_dir or '/path/to/new_data_dir')}"
            ) from e
        raise ValueError(
            f"TFDS dataset {name!r} has no split {split!r}: {list(builder.info.splits.keys())}"
        ) from e


def _builder(name: str, data_dir: str | None):
    """The TFDS builder for `name` (with config), without touching the network."""
    _register_translation_builders()
    try:
        return tfds.builder(name, data_dir=data_dir)
    except (ValueError, AssertionError) as e:  # DatasetNotFoundError is a ValueError
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(
            f"config.data.name='tfds:{name}' is invalid: unknown TFDS dataset, config or "
            f"version ({first})"
        ) from e


def _text(value: Any) -> str:
    """A text feature as `str`: real data arrive as bytes, `tfds.testing.mock_data` as str."""
    if isinstance(value, bytes | np.bytes_):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _text(value.item())
    return str(value)


def _read_chunk(source, indices: range) -> list:
    """Records `indices` in one batched read.

    `tfds.testing.mock_data` (tfds 4.9.10) installs an unbound `__getitems__` that raises
    TypeError when called (its partial misses `self`); fall back to per-record reads there.
    """
    try:
        return source.__getitems__(indices)
    except TypeError:
        return [source[i] for i in indices]


def load_pairs(
    name: str,
    split: str,
    data_dir: str | None = None,
    src_key: str | None = None,
    tgt_key: str | None = None,
    max_examples: int | None = None,
) -> list[tuple[str, str]]:
    """One split of a TFDS translation dataset as `(source, target)` string pairs, in file order.

    Args:
      name: a TFDS name with config, e.g. `"wmt14_translate/de-en"`, or the same with the
        `tfds:` prefix.
      split: a TFDS split ("train", "validation", "test", or a slice like "train[:10%]").
      data_dir: TFDS data directory holding the prepared dataset; None means TFDS's default
        (`$TFDS_DATA_DIR`, else `~/tensorflow_datasets`).
      src_key, tgt_key: feature names (language codes, e.g. "de" and "en"); each defaults to
        the matching entry of the dataset's `info.supervised_keys`.
      max_examples: read at most this many examples (the first ones).

    Returns:
      `[N]` list of `(source, target)` python strings.

    Raises:
      DatasetNotPreparedError: (a FileNotFoundError) the dataset has no data under `data_dir`;
        the message says how to prepare it.
      ValueError: unknown dataset/config, unknown split, keys that are not features, or a
        dataset without supervised keys when no keys are given.
    """
    if name.startswith(TFDS_PREFIX):
        name = parse_tfds_name(name)
    builder = _builder(name, data_dir)
    info = builder.info
    features = list(info.features.keys()) if hasattr(info.features, "keys") else []
    supervised = info.supervised_keys
    if src_key is None or tgt_key is None:
        if not (isinstance(supervised, tuple) and len(supervised) == 2):
            raise ValueError(
                f"TFDS dataset {name!r} has no (source, target) supervised_keys "
                f"({supervised!r}); pass src_key and tgt_key (features: {features})"
            )
        src_key = supervised[0] if src_key is None else src_key
        tgt_key = supervised[1] if tgt_key is None else tgt_key
    for key in (src_key, tgt_key):
        if key not in features:
            raise ValueError(f"{key!r} is not a feature of TFDS dataset {name!r}: {features}")

    source = open_split(builder, name, split, data_dir)
    count = len(source) if max_examples is None else min(len(source), max(0, max_examples))
    pairs = []
    for start in range(0, count, READ_CHUNK):
        for example in _read_chunk(source, range(start, min(start + READ_CHUNK, count))):
            pairs.append((_text(example[src_key]), _text(example[tgt_key])))
    return pairs


def char_vocab(texts: Iterable[str], min_count: int = 1) -> Vocab:
    """A character vocabulary: characters seen at least `min_count` times.

    Order (ids after the four reserved ones): by decreasing frequency, ties by code point, so
    the same texts always give the same ids. Rarer characters become `UNK` when encoded.
    """
    counts = Counter()
    for text in texts:
        counts.update(text)
    kept = [c for c, n in counts.items() if n >= min_count]
    return Vocab(sorted(kept, key=lambda c: (-counts[c], ord(c))))


class CharTokenizer:
    """Characters as tokens: `encode(text) = list(text)`, `decode(pieces) = "".join(pieces)`.

    A decoded `UNK` shows up as the literal text `<unk>`.
    """

    def __init__(self, vocab: Vocab):
        self.vocab = vocab

    @classmethod
    def train(cls, texts: Iterable[str], min_count: int = 1) -> CharTokenizer:
        """A tokenizer whose vocabulary is `char_vocab(texts, min_count)`."""
        return cls(char_vocab(texts, min_count))

    def encode(self, text: str) -> list[str]:
        return list(text)

    def decode(self, pieces: Iterable[str]) -> str:
        return "".join(pieces)

    def encode_ids(self, text: str) -> np.ndarray:
        """`text` -> int32 ids `[len(text)]` (unknown characters -> `UNK_ID`, counted)."""
        return self.vocab.encode(self.encode(text))

    def decode_ids(self, ids: Iterable[int]) -> str:
        """Ids -> text, stopping at `</s>` and skipping `<pad>`/`<s>` (see `Vocab.decode`)."""
        return self.decode(self.vocab.decode(ids))


class SubwordTokenizer:
    """A SentencePiece model with an attnlab `Vocab` over its pieces.

    `vocab` lists the model's pieces in SentencePiece id order after the reserved tokens, except
    SentencePiece's `<unk>`, which is our `UNK` (id 3). Characters the model never saw come out
    of `encode` as their own pieces, which `vocab.encode` maps to `UNK_ID` (and counts);
    `decode` shows `<unk>` pieces as " ⁇ ".

    Attributes:
      model_proto: the serialized model (bytes); `SubwordTokenizer(model_proto)` rebuilds it.
      vocab: the attnlab vocabulary.
      path: the `.model` file written by `train_sentencepiece` or read by `load`, else None.
    """

    def __init__(self, model_proto: bytes):
        self.model_proto = bytes(model_proto)
        self.path: Path | None = None
        self.processor = spm.SentencePieceProcessor(model_proto=self.model_proto)
        sp = self.processor
        pieces = [
            sp.id_to_piece(i)
            for i in range(sp.get_piece_size())
            if not (sp.is_unknown(i) or sp.is_control(i))
        ]
        # A piece spelled like a reserved token (only possible if the training text contains
        # e.g. a literal "<s>") would alias a reserved id; leave it out, so it encodes as UNK.
        self.vocab = Vocab([p for p in pieces if p not in SPECIALS])

    @classmethod
    def load(cls, path: str | Path) -> SubwordTokenizer:
        """Reads a `.model` file written by `train_sentencepiece(..., model_prefix_dir=...)`."""
        tokenizer = cls(Path(path).read_bytes())
        tokenizer.path = Path(path)
        return tokenizer

    def encode(self, text: str) -> list[str]:
        return self.processor.encode(text, out_type=str)

    def decode(self, pieces: Iterable[str]) -> str:
        return self.processor.decode_pieces(list(pieces))

    def encode_ids(self, text: str) -> np.ndarray:
        """`text` -> int32 ids `[num_pieces]` (unknown pieces -> `UNK_ID`, counted)."""
        return self.vocab.encode(self.encode(text))

    def decode_ids(self, ids: Iterable[int]) -> str:
        """Ids -> text, stopping at `</s>` and skipping `<pad>`/`<s>` (see `Vocab.decode`)."""
        return self.decode(self.vocab.decode(ids))


def train_sentencepiece(
    texts: Iterable[str],
    vocab_size: int,
    model_prefix_dir: str | Path | None = None,
    model_type: str = "unigram",
    seed: int = 0,
    character_coverage: float = 1.0,
    normalization_rule_name: str = "identity",
    num_threads: int = 1,
) -> SubwordTokenizer:
    """Trains a SentencePiece model in memory; deterministic for the same inputs.

    Args:
      texts: training sentences (one string each; typically the source or target side of the
        training split, or both for a shared vocabulary).
      vocab_size: SentencePiece's piece count, including its `<unk>` (the attnlab vocabulary
        then has `vocab_size + 3` entries). A soft limit: small corpora may yield fewer pieces
        instead of failing.
      model_prefix_dir: if given, the model is also written to
        `<dir>/sentencepiece_<model_type>_<vocab_size>.model` (read back with
        `SubwordTokenizer.load`).
      model_type: "unigram" or "bpe".
      seed: SentencePiece's random seed (used by unigram sentence sampling).
      character_coverage: fraction of characters covered; rarer characters become `<unk>`.
      normalization_rule_name: "identity" (default) keeps text unchanged so
        `decode(encode(text)) == text` for covered text, spaces included; "nmt_nfkc" is
        SentencePiece's own default (NFKC, whitespace collapsed).
      num_threads: training threads; 1 keeps the result independent of scheduling.

    Returns:
      The trained `SubwordTokenizer`.
    """
    if model_type not in ("unigram", "bpe"):
        raise ValueError(f"model_type must be 'unigram' or 'bpe', got {model_type!r}")
    texts = [t for t in texts if t]
    if not texts:
        raise ValueError("cannot train a SentencePiece model on no text")
    spm.set_random_generator_seed(seed)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=model,
        vocab_size=vocab_size,
        model_type=model_type,
        unk_id=0,
        bos_id=-1,
        eos_id=-1,
        pad_id=-1,
        character_coverage=character_coverage,
        normalization_rule_name=normalization_rule_name,
        remove_extra_whitespaces=normalization_rule_name != "identity",
        hard_vocab_limit=False,
        num_threads=num_threads,
        minloglevel=2,
    )
    tokenizer = SubwordTokenizer(model.getvalue())
    if model_prefix_dir is not None:
        directory = Path(model_prefix_dir)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"sentencepiece_{model_type}_{vocab_size}.model"
        path.write_bytes(tokenizer.model_proto)
        tokenizer.path = path
    return tokenizer


def length_filter(
    pairs: Sequence[tuple[Sequence, Sequence]],
    max_src_len: int,
    max_tgt_len: int,
    policy: str = "drop",
) -> tuple[list[tuple[Sequence, Sequence]], dict[str, int]]:
    """Applies length limits to tokenized `(source, target)` pairs.

    Args:
      pairs: `[N]` pairs of token sequences (lists of pieces or id arrays).
      max_src_len, max_tgt_len: maximum lengths (>= 1), in tokens, excluding BOS/EOS.
      policy: "drop" removes pairs with either side too long; "truncate" cuts them to the limits.

    Returns:
      `(kept, counts)`: the kept pairs in order (truncated ones cut) and
      `{"total", "kept", "dropped_empty", "dropped_long", "truncated"}`. Pairs with an empty
      side are always dropped (counted in `dropped_empty`), under either policy.
    """
    if policy not in ("drop", "truncate"):
        raise ValueError(f"policy must be 'drop' or 'truncate', got {policy!r}")
    if max_src_len < 1 or max_tgt_len < 1:
        raise ValueError(f"length limits must be >= 1, got {max_src_len}, {max_tgt_len}")
    counts = {"total": 0, "kept": 0, "dropped_empty": 0, "dropped_long": 0, "truncated": 0}
    kept = []
    for src, tgt in pairs:
        counts["total"] += 1
        if len(src) == 0 or len(tgt) == 0:
            counts["dropped_empty"] += 1
            continue
        if len(src) > max_src_len or len(tgt) > max_tgt_len:
            if policy == "drop":
                counts["dropped_long"] += 1
                continue
            src, tgt = src[:max_src_len], tgt[:max_tgt_len]
            counts["truncated"] += 1
        kept.append((src, tgt))
    counts["kept"] = len(kept)
    return kept, counts


__all__ = [
    "CharTokenizer",
    "DatasetNotPreparedError",
    "SubwordTokenizer",
    "TFDS_PREFIX",
    "char_vocab",
    "length_filter",
    "load_pairs",
    "parse_tfds_name",
    "open_split",
    "prepare_command",
    "train_sentencepiece",
]
