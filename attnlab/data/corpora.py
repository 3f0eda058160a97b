"""Real data sets as tokenized splits: `g2p` (CMUdict), `dates` (CLDR) and `tfds:<name>`.

`load_corpus(data_cfg)` reads every split of the data set named by `data_cfg.name`, tokenizes it
(tokenizers and vocabularies are built from the training split only) and returns a `Corpus`:
per split, the token sequences, the gold alignment where defined, and the references a metric
compares hypotheses against (for g2p: every listed pronunciation of the word).

| name | source tokens | target tokens | references | text metrics |
|---|---|---|---|---|
| `g2p` | letters of the word | ARPAbet phonemes | all pronunciations | PER, WER |
| `dates` | characters of the date | characters of `YYYY-MM-DD` | the ISO date | - |
| `tfds:<name>` | characters or SentencePiece pieces (`data.tokenizer`) | same | tgt | BLEU, chrF |

Sequences longer than `data.max_len` (source) or `data.max_tgt_len` (target) tokens are dropped
or truncated (`data.overlong`), and empty ones dropped, in every split; the counts are kept in
`Corpus.filter_counts` and reported in the run's summary.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np

from attnlab.config_lib import ConfigError
from attnlab.data import text
from attnlab.data.vocab import Vocab

SPLITS = ("train", "validation", "test")
TEXT_METRICS = {"g2p": "g2p", "dates": "", "tfds": "bleu"}


class SpaceTokenizer:
    """Space-separated symbols as tokens (ARPAbet phonemes): `"T AE1 NG K"` <-> `[T, AE1, ...]`."""

    def __init__(self, vocab: Vocab):
        self.vocab = vocab

    @classmethod
    def train(cls, texts: Iterable[str]) -> SpaceTokenizer:
        """A vocabulary of every symbol in `texts`, sorted (deterministic ids)."""
        return cls(Vocab(sorted({s for t in texts for s in t.split()})))

    def encode(self, value: str) -> list[str]:
        return value.split()

    def decode(self, pieces: Iterable[str]) -> str:
        return " ".join(pieces)


@dataclasses.dataclass
class Split:
    """One tokenized split: `src[i]`, `tgt[i]` token lists, `align[i]` (`[len(tgt[i])]` ints,
    -1 where undefined) or None, and `refs[i]`: the reference token lists of example `i`."""

    src: list[list[str]]
    tgt: list[list[str]]
    align: list[list[int] | None]
    refs: list[list[list[str]]]


@dataclasses.dataclass
class Corpus:
    """Tokenized splits with their tokenizers; `metrics`: "g2p" (PER/WER), "bleu" (BLEU/chrF)
    or "" (exact match only)."""

    splits: dict[str, Split]
    src_tokenizer: object
    tgt_tokenizer: object
    metrics: str
    filter_counts: dict[str, dict[str, int]]


def kind(name: str) -> str:
    """`"g2p"`, `"dates"`, `"tfds"`, or `""` for a name that is not a real data set."""
    if name in ("g2p", "dates"):
        return name
    return "tfds" if name.startswith(text.TFDS_PREFIX) else ""


def _cap(items: list, count: int) -> list:
    """The first `count` items (the files' order is fixed by the build, so this is stable)."""
    return items[:count] if count > 0 else items


def _raw_splits(data_cfg) -> dict[str, list[dict]]:
    """Every split as dicts with `src`, `tgt` (str), `refs` (list of str), `align` (or None)."""
    from attnlab.data import builders as datasets

    limits = {
        "train": data_cfg.num_train,
        "validation": data_cfg.num_valid,
        "test": data_cfg.num_test,
    }
    data_dir = data_cfg.data_dir or None
    out = {}
    for split in SPLITS:
        if data_cfg.name == "g2p":
            config = "stress" if data_cfg.g2p_stress else "no_stress"
            rows = datasets.load_split("g2p", split, data_dir, config)
            out[split] = [
                {"src": r["word"], "tgt": r["phonemes"], "refs": r["pronunciations"], "align": None}
                for r in _cap(rows, limits[split])
            ]
        elif data_cfg.name == "dates":
            rows = datasets.load_split("dates", split, data_dir)
            out[split] = [
                {
                    "src": r["source"],
                    "tgt": r["target"],
                    "refs": [r["target"]],
                    "align": r["alignment"],
                }
                for r in _cap(rows, limits[split])
            ]
        else:
            pairs = text.load_pairs(data_cfg.name, split, data_dir, max_examples=limits[split])
            out[split] = [{"src": s, "tgt": t, "refs": [t], "align": None} for s, t in pairs]
    return out


def _tokenizers(data_cfg, train: list[dict]):
    """Source and target tokenizers built from the training split only (deterministic, so a
    run's tokenizers are rebuilt from its config alone)."""
    sources, targets = [r["src"] for r in train], [r["tgt"] for r in train]
    if data_cfg.name == "g2p":
        return text.CharTokenizer.train(sources), SpaceTokenizer.train(targets)
    if data_cfg.name == "dates" or data_cfg.tokenizer == "char":
        return text.CharTokenizer.train(sources), text.CharTokenizer.train(targets)
    size, model_type = data_cfg.subword_vocab_size, data_cfg.subword_model
    return (
        text.train_sentencepiece(sources, size, model_type=model_type),
        text.train_sentencepiece(targets, size, model_type=model_type),
    )


def load_corpus(data_cfg) -> Corpus:
    """Reads, tokenizes and length-filters every split of `data_cfg.name` (see the module doc)."""
    raw = _raw_splits(data_cfg)
    if not raw["train"]:
        raise ConfigError(f"config.data.name={data_cfg.name!r}: the training split is empty")
    src_tok, tgt_tok = _tokenizers(data_cfg, raw["train"])
    splits, counts = {}, {}
    for name, rows in raw.items():
        if not rows:
            raise ConfigError(
                f"config.data.name={data_cfg.name!r}: the '{name}' split is empty (check "
                "data.num_train / num_valid / num_test and the data set)"
            )
        splits[name], counts[name] = _filtered_split(rows, data_cfg, src_tok, tgt_tok)
        need = data_cfg.batch_size if name == "train" else 1
        if counts[name]["kept"] < need:
            raise ConfigError(
                f"config.data.name={data_cfg.name!r}: {counts[name]['kept']} of "
                f"{counts[name]['total']} '{name}' examples are left after the length limits "
                f"(data.max_len={data_cfg.max_len}, data.max_tgt_len={data_cfg.max_tgt_len}, "
                f"data.overlong={data_cfg.overlong!r}), need at least {need}; raise the limits "
                "or use data.overlong=truncate"
            )
    return Corpus(splits, src_tok, tgt_tok, TEXT_METRICS[kind(data_cfg.name)], counts)


def _filtered_split(rows, data_cfg, src_tok, tgt_tok) -> tuple[Split, dict[str, int]]:
    """Tokenizes rows and applies the length policy (the rules of `text.length_filter`), keeping
    each row's alignment and references; returns the split and what was dropped or cut."""
    out = Split([], [], [], [])
    counts = {"total": len(rows), "kept": 0, "dropped_empty": 0, "dropped_long": 0, "truncated": 0}
    for row in rows:
        src, tgt = src_tok.encode(row["src"]), tgt_tok.encode(row["tgt"])
        if not src or not tgt:
            counts["dropped_empty"] += 1
            continue
        if len(src) > data_cfg.max_len or len(tgt) > data_cfg.max_tgt_len:
            if data_cfg.overlong == "drop":
                counts["dropped_long"] += 1
                continue
            src, tgt = src[: data_cfg.max_len], tgt[: data_cfg.max_tgt_len]
            counts["truncated"] += 1
        align = row["align"]
        if align is not None:
            align = [a if a < len(src) else -1 for a in list(align)[: len(tgt)]]
        out.src.append(src)
        out.tgt.append(tgt)
        out.align.append(align)
        out.refs.append([tgt_tok.encode(r) for r in row["refs"]])
    counts["kept"] = len(out.src)
    return out, counts


def encode_split(split: Split, src_vocab: Vocab, tgt_vocab: Vocab):
    """Token lists -> `Example`s of int32 ids (unknown tokens become `<unk>`, counted by the
    vocabularies)."""
    from attnlab.data.synthetic import Example

    return [
        Example(
            src_vocab.encode(s),
            tgt_vocab.encode(t),
            None if a is None else np.asarray(a, np.int32),
        )
        for s, t, a in zip(split.src, split.tgt, split.align, strict=True)
    ]
