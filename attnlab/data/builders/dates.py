"""`attnlab_dates`: human-readable dates to ISO 8601 (`YYYY-MM-DD`), with gold alignments.

A TFDS builder that generates its data (no download): dates drawn with a fixed seed, rendered
by Babel from CLDR data in several locales and formats, paired with the ISO date. Each example
carries a character-level gold alignment (which source character each target character copies,
where that is defined), so attention maps can be scored against it. See `DESCRIPTION` for the
exact rules.
"""

from __future__ import annotations

import dataclasses
import datetime
import random
import re
import unicodedata

import numpy as np
import tensorflow_datasets as tfds

from attnlab.data.builders.base import ArrayRecordBuilder

LOCALES = (
    "en_US",
    "en_GB",
    "de_DE",
    "fr_FR",
    "es_ES",
    "it_IT",
    "nl_NL",
    "pt_BR",
    "sv_SE",
)
# CLDR's standard lengths, then custom patterns (CLDR/LDML syntax, localised month and day names).
FORMATS = ("short", "medium", "long", "full", "d MMM y", "EEEE d MMMM y", "dd.MM.y")
_STANDARD_FORMATS = ("short", "medium", "long", "full")
# Pattern fields a format may use: year, month (format / stand-alone), day, weekday.
_ALLOWED_FIELDS = frozenset("yMLdEc")
# Target character positions of each field in YYYY-MM-DD.
_TARGET_SLOTS = {"y": (0, 4), "M": (5, 7), "L": (5, 7), "d": (8, 10)}
_SPLITS = ("train", "validation", "test")

DESCRIPTION = """\
Human-readable dates and their ISO 8601 form (`YYYY-MM-DD`), generated from CLDR data with
Babel (`babel.dates`; the Babel and CLDR versions are recorded in the metadata, since another
CLDR release may render some dates differently).

Generation: each split is drawn with its own `random.Random(f"{seed}:{split}")` (seed 1234 in
the predefined configs): a date uniformly in 1900-01-01..2099-12-31, a locale uniformly among
en_US, en_GB, de_DE, fr_FR, es_ES, it_IT, nl_NL, pt_BR, sv_SE and a format uniformly among
the CLDR lengths short, medium, long, full and the patterns 'd MMM y', 'EEEE d MMMM y',
'dd.MM.y'. Draws are rejected (and redrawn) when:

* the source string was already produced, in this split or an earlier one (splits are generated
  in the order train, validation, test), so every source string occurs once in the whole
  dataset and validation/test share no source with train (the same calendar date can still
  appear in two splits rendered differently);
* the source is all-digits-and-separators and another numeric format of the dataset reads it as
  a different date (e.g. en_US "3/5/1950", March 5, is es_ES "3/5/1950", May 3), so the
  target is always recoverable from the source alone. This removes en_US short dates with
  day <= 12 (unless day == month) and the day-first numeric renderings they clash with.

Rendering choices: two-digit years ('yy' in some CLDR short patterns) are widened to four
digits ('y'), since "3/5/07" would be ambiguous over 1900-2099; the `pattern` feature is the
pattern actually used. Unicode space separators (category Zs: no-break U+00A0, narrow no-break
U+202F, ...) are replaced by a plain space and format characters (category Cf, e.g.
left-to-right marks) are removed, so sources hold ordinary spaces.

Features: `source` (the rendered date), `target` (ISO date), `locale`, `format` (a CLDR length
or a custom pattern), `pattern` (the LDML pattern rendered) and `alignment`: one integer per
target character, the index of the source character it copies, or -1 where no source
character is copied. Defined for the 4 year digits (the source always writes the year as 4
digits), and for month/day digits when the month/day is written as a number ("05" aligns
both digits; "5" aligns the "5" and leaves the padding "0" at -1). Hyphens and digits of months
written as names are -1. Always `source[alignment[i]] == target[i]` where `alignment[i] >= 0`.
"""

_CITATION = """\
@misc{cldr,
  title = {Unicode Common Locale Data Repository ({CLDR})},
  author = {{Unicode Consortium}},
  howpublished = {\\url{https://cldr.unicode.org}},
}
"""


@dataclasses.dataclass(eq=False)
class DatesConfig(tfds.core.BuilderConfig):
    """Config of `attnlab_dates`: split sizes, seed, locales, formats and date range.

    Any instance can be passed as `config=` (TFDS logs "Using custom data configuration");
    give it a name that is not a predefined config's.
    """

    train_size: int = 20_000
    validation_size: int = 1_000
    test_size: int = 1_000
    seed: int = 1234
    locales: tuple[str, ...] = LOCALES
    formats: tuple[str, ...] = FORMATS
    first_date: str = "1900-01-01"
    last_date: str = "2099-12-31"

    def split_sizes(self) -> dict[str, int]:
        return {
            "train": self.train_size,
            "validation": self.validation_size,
            "test": self.test_size,
        }


def normalise_text(text: str) -> str:
    """Space separators (Zs) to plain spaces, format characters (Cf) removed."""
    out = []
    for char in text:
        category = unicodedata.category(char)
        if category == "Zs":
            out.append(" ")
        elif category != "Cf":
            out.append(char)
    return "".join(out)


def resolve_pattern(fmt: str, locale: str) -> str:
    """The LDML pattern of `fmt` in `locale`, with two-digit years widened to four digits.

    `fmt` is a CLDR length ("short", "medium", "long", "full") or a pattern used as is.
    """
    import babel.dates

    pattern = babel.dates.get_date_format(fmt, locale).pattern if fmt in _STANDARD_FORMATS else fmt
    # Quoted literals are kept; a run of exactly two 'y' becomes one (full year).
    return re.sub(
        r"'[^']*'|y+",
        lambda m: "y" if m.group(0) == "yy" else m.group(0),
        pattern,
    )


def render(date: datetime.date, locale: str, pattern: str) -> tuple[str, dict]:
    """Renders `date` as Babel's `format_date(date, pattern, locale)` does, then normalised.

    Renders field by field to know where each field lands. Returns the source and, per field
    letter, a list of `(start, end, width)` spans (width: the pattern's letter count).
    """
    import babel.dates
    from babel import Locale

    formatter = babel.dates.DateTimeFormat(date, locale=Locale.parse(locale))
    pieces, spans, pos = [], {}, 0
    for kind, value in babel.dates.tokenize_pattern(pattern):
        if kind == "chars":
            text = normalise_text(value)
        else:
            letter, width = value
            if letter not in _ALLOWED_FIELDS:
                raise ValueError(f"pattern {pattern!r}: field {letter!r} is not supported")
            text = normalise_text(formatter[letter * width])
            spans.setdefault(letter, []).append((pos, pos + len(text), width))
        pieces.append(text)
        pos += len(text)
    return "".join(pieces), spans


def gold_alignment(source: str, target: str, spans: dict) -> list[int]:
    """For each target character, the source index it copies, or -1 (see `DESCRIPTION`)."""
    alignment = [-1] * len(target)
    for letter, (t_start, t_end) in _TARGET_SLOTS.items():
        if len(spans.get(letter, ())) != 1:
            continue  # absent, or written twice: no single source to copy from
        start, end, width = spans[letter][0]
        if letter != "y" and width > 2:
            continue  # month written as a name
        text = source[start:end]
        digits = target[t_start:t_end]
        if not text.isdigit() or not digits.endswith(text):
            continue
        offset = t_end - len(text)  # unpadded "5": only the last target digit is copied
        for i in range(len(text)):
            alignment[offset + i] = start + i
    for i, j in enumerate(alignment):
        if j >= 0 and source[j] != target[i]:
            raise AssertionError(f"bad alignment {source!r} -> {target!r}: {alignment}")
    return alignment


def _is_numeric(pattern: str) -> bool:
    """Whether `pattern` renders only numbers and literals (year, numeric month, day)."""
    import babel.dates

    for kind, value in babel.dates.tokenize_pattern(pattern):
        if kind == "field":
            letter, width = value
            if letter not in "yMLd" or (letter in "ML" and width > 2):
                return False
    return True


class _NumericReader:
    """Reads a source back with every numeric (locale, pattern) of a config.

    Used to reject sources that two numeric formats read as different dates.
    """

    def __init__(self, combos):
        import babel.dates

        self._readers = []
        for locale, pattern in sorted(set(combos)):
            if not _is_numeric(pattern):
                continue
            regex, order = [], []
            for kind, value in babel.dates.tokenize_pattern(pattern):
                if kind == "chars":
                    regex.append(re.escape(normalise_text(value)))
                else:
                    regex.append(r"(\d+)")
                    order.append(value[0])
            self._readers.append((locale, pattern, re.compile("".join(regex) + r"\Z"), order))

    def readings(self, source: str) -> set[datetime.date]:
        """All dates some numeric format renders exactly as `source`."""
        found = set()
        for locale, pattern, regex, order in self._readers:
            match = regex.match(source)
            if not match:
                continue
            fields = {
                "M" if k == "L" else k: int(v) for k, v in zip(order, match.groups(), strict=True)
            }
            try:
                date = datetime.date(fields["y"], fields["M"], fields["d"])
            except (KeyError, ValueError):
                continue
            if render(date, locale, pattern)[0] == source:
                found.add(date)
        return found


def generate(config: DatesConfig) -> tuple[dict[str, list[dict]], dict]:
    """All splits of `config` as lists of feature dicts, and generation statistics.

    Deterministic: depends only on the config and the installed CLDR data.
    """
    first = datetime.date.fromisoformat(config.first_date)
    n_days = (datetime.date.fromisoformat(config.last_date) - first).days + 1
    if n_days < 1:
        raise ValueError(f"empty date range {config.first_date}..{config.last_date}")
    patterns = {
        (loc, fmt): resolve_pattern(fmt, loc) for loc in config.locales for fmt in config.formats
    }
    reader = _NumericReader((loc, pat) for (loc, _), pat in patterns.items())
    seen: set[str] = set()
    splits, stats = {}, {}
    for split, size in config.split_sizes().items():
        rng = random.Random(f"{config.seed}:{split}")
        examples, duplicates, ambiguous, draws = [], 0, 0, 0
        while len(examples) < size:
            draws += 1
            if draws > 100 * size + 10_000:
                raise ValueError(f"cannot draw {size} distinct {split} sources from {config}")
            # rng.random() is the stream Python guarantees across versions.
            date = first + datetime.timedelta(days=int(rng.random() * n_days))
            locale = config.locales[int(rng.random() * len(config.locales))]
            fmt = config.formats[int(rng.random() * len(config.formats))]
            pattern = patterns[locale, fmt]
            source, spans = render(date, locale, pattern)
            if source in seen:
                duplicates += 1
                continue
            if len(reader.readings(source)) > 1:
                ambiguous += 1
                continue
            seen.add(source)
            target = date.isoformat()
            examples.append(
                {
                    "source": source,
                    "target": target,
                    "locale": locale,
                    "format": fmt,
                    "pattern": pattern,
                    "alignment": np.asarray(gold_alignment(source, target, spans), np.int32),
                }
            )
        splits[split] = examples
        stats[split] = {"draws": draws, "duplicates": duplicates, "ambiguous": ambiguous}
    return splits, stats


class AttnlabDates(ArrayRecordBuilder):
    """Human-readable dates (CLDR via Babel, several locales/formats) to ISO 8601.

    Written as array_record (`ArrayRecordBuilder`); read it with `as_data_source()` /
    `tfds.data_source`.
    """

    name = "attnlab_dates"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release: 9 locales x 7 formats, 1900-2099, seeded, sources unique "
        "across splits, numerically ambiguous sources rejected, gold character alignments.",
    }
    BUILDER_CONFIGS = [
        DatesConfig(name="default", description="20000 / 1000 / 1000 examples, seed 1234."),
        DatesConfig(
            name="small",
            description="2000 / 200 / 200 examples, seed 1234: for smoke runs.",
            train_size=2_000,
            validation_size=200,
            test_size=200,
        ),
    ]
    DEFAULT_CONFIG_NAME = "default"

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=DESCRIPTION,
            features=tfds.features.FeaturesDict(
                {
                    "source": tfds.features.Text(doc="The date as Babel renders it."),
                    "target": tfds.features.Text(doc="ISO 8601 date, YYYY-MM-DD."),
                    "locale": tfds.features.Text(doc="CLDR locale, e.g. en_US."),
                    "format": tfds.features.Text(doc="CLDR length or custom LDML pattern."),
                    "pattern": tfds.features.Text(doc="LDML pattern actually rendered."),
                    "alignment": tfds.features.Sequence(
                        np.int32,
                        doc="Per target character, the source index it copies, or -1.",
                    ),
                }
            ),
            supervised_keys=("source", "target"),
            homepage="https://cldr.unicode.org",
            citation=_CITATION,
            metadata=tfds.core.MetadataDict(),
            license="Unicode License (CLDR data, via Babel).",
        )

    def _split_generators(self, dl_manager):
        """Generates every split up front: validation/test must exclude train's sources.

        `dl_manager` is unused: the data are generated.
        """
        del dl_manager
        import babel
        from babel.core import get_cldr_version

        config: DatesConfig = self.builder_config
        splits, stats = generate(config)
        self.info.metadata.update(
            {
                "babel_version": babel.__version__,
                "cldr_version": str(get_cldr_version()),
                "seed": config.seed,
                "generation": stats,
            }
        )
        return {name: self._generate_examples(examples) for name, examples in splits.items()}

    def _generate_examples(self, examples):
        yield from enumerate(examples)
