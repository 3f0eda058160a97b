"""The TFDS builders `attnlab_g2p` and `attnlab_dates`: built into tmp dirs and read back.

Builds are module-scoped (the full CMUdict build takes ~10 s); the stress config and the dates
are checked on small configs, each built twice to check determinism.
"""

import datetime
import re

import babel.dates
import pytest
import tensorflow_datasets as tfds

import attnlab.data.builders
from attnlab.data.builders import DatesConfig, G2pConfig, dates, g2p, load_split

SPLITS = ("train", "validation", "test")


def _load_all(name, data_dir, config=None):
    return {
        split: load_split(name, split, data_dir=str(data_dir), config=config) for split in SPLITS
    }


@pytest.fixture(scope="module")
def g2p_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("g2p")


@pytest.fixture(scope="module")
def g2p_full(g2p_dir):
    """The default config (no_stress), whole dictionary."""
    return _load_all("g2p", g2p_dir)


@pytest.fixture(scope="module")
def g2p_stress_builds(tmp_path_factory):
    """The same small stress config built twice into different directories."""
    config = G2pConfig(name="stress_sample", keep_stress=True, subsample=25)
    return [_load_all("g2p", tmp_path_factory.mktemp(f"g2p_stress{i}"), config) for i in range(2)]


DATES_CONFIG = DatesConfig(name="test_sample", train_size=2000, validation_size=300, test_size=300)


@pytest.fixture(scope="module")
def dates_builds(tmp_path_factory):
    """A small dates config built twice into different directories."""
    return [
        _load_all("dates", tmp_path_factory.mktemp(f"dates{i}"), DATES_CONFIG) for i in range(2)
    ]


def test_builders_are_registered(tmp_path):
    assert attnlab.data.builders.NAMES == {
        "g2p": "attnlab_g2p",
        "dates": "attnlab_dates",
        "digits": "attnlab_digits_canvas",
        "mnist": "attnlab_mnist",
    }
    for name, cls, default in [
        ("attnlab_g2p", attnlab.data.builders.AttnlabG2p, "no_stress"),
        ("attnlab_dates", attnlab.data.builders.AttnlabDates, "default"),
    ]:
        builder = tfds.builder(name, data_dir=str(tmp_path))
        assert isinstance(builder, cls)
        assert builder.builder_config.name == default
        assert builder.info.file_format.value == "array_record"
        assert str(builder.version) == "1.0.0" and "1.0.0" in builder.release_notes
    assert tfds.builder("attnlab_g2p/stress", data_dir=str(tmp_path)).builder_config.keep_stress
    assert "sha256" in tfds.builder("attnlab_g2p", data_dir=str(tmp_path)).info.description


def test_g2p_reads_back_with_tfds_data_source(g2p_full, g2p_dir):
    source = tfds.data_source("attnlab_g2p", split="validation", data_dir=str(g2p_dir))
    assert len(source) == len(g2p_full["validation"])
    first = source[0]
    assert set(first) == {"word", "phonemes", "pronunciations"}
    assert first["word"].decode() == g2p_full["validation"][0]["word"]


def test_g2p_splits_follow_the_rule_disjoint_and_90_5_5(g2p_full, g2p_dir):
    words = {split: [ex["word"] for ex in g2p_full[split]] for split in SPLITS}
    for split in SPLITS:
        assert len(set(words[split])) == len(words[split])  # one example per word
        assert all(g2p.split_of(w) == split for w in words[split])
        assert all(re.fullmatch(r"[a-z']+", w) for w in words[split])
    assert not set(words["train"]) & set(words["validation"])
    assert not set(words["train"]) & set(words["test"])
    assert not set(words["validation"]) & set(words["test"])
    total = sum(len(w) for w in words.values())
    for split, share in zip(SPLITS, (0.90, 0.05, 0.05), strict=True):
        assert abs(len(words[split]) / total - share) < 0.005, split
    metadata = tfds.builder("attnlab_g2p", data_dir=str(g2p_dir)).info.metadata
    assert total + metadata["words_dropped"] == metadata["words_total"]
    assert metadata["words_dropped"] == len(metadata["dropped_words"]) > 0
    assert "able-bodied" in metadata["dropped_words"]


def test_g2p_strips_stress_and_keeps_all_pronunciations_together(g2p_full):
    by_word = {ex["word"]: ex for split in SPLITS for ex in g2p_full[split]}
    for ex in by_word.values():
        assert ex["phonemes"] == ex["pronunciations"][0]
        assert not re.search(r"\d", " ".join(ex["pronunciations"]))
        assert len(set(ex["pronunciations"])) == len(ex["pronunciations"])
    assert by_word["tomato"]["pronunciations"] == ["T AH M EY T OW", "T AH M AA T OW"]
    assert by_word["read"]["pronunciations"] == ["R EH D", "R IY D"]
    assert by_word["read"]["phonemes"] == "R EH D"


def test_g2p_stress_config_is_deterministic_and_agrees_with_no_stress(g2p_stress_builds, g2p_full):
    first, second = g2p_stress_builds
    assert first == second
    full = {split: {ex["word"]: ex for ex in g2p_full[split]} for split in SPLITS}
    n_words = sum(len(first[split]) for split in SPLITS)
    assert 124_926 / 25 * 0.8 < n_words < 124_926 / 25 * 1.2
    for split in SPLITS:
        for ex in first[split]:
            assert re.search(r"[012]", ex["phonemes"])  # every word has a stressed vowel
            stripped = [re.sub(r"\d", "", p) for p in ex["pronunciations"]]
            # Same word in the same split as the full build; stress-only variants merged there.
            assert list(dict.fromkeys(stripped)) == full[split][ex["word"]]["pronunciations"]


def test_dates_sizes_uniqueness_and_determinism(dates_builds):
    first, second = dates_builds
    assert first == second
    sizes = {split: len(first[split]) for split in SPLITS}
    assert sizes == {"train": 2000, "validation": 300, "test": 300}
    sources = [ex["source"] for split in SPLITS for ex in first[split]]
    assert len(set(sources)) == len(sources)  # hence no validation/test source is in train
    assert {ex["locale"] for ex in first["train"]} == set(dates.LOCALES)
    assert {ex["format"] for ex in first["train"]} == set(dates.FORMATS)


def test_dates_targets_render_back_to_sources(dates_builds):
    for split in SPLITS:
        for ex in dates_builds[0][split]:
            date = datetime.date.fromisoformat(ex["target"])
            assert date.isoformat() == ex["target"]
            assert datetime.date(1900, 1, 1) <= date <= datetime.date(2099, 12, 31)
            rendered = babel.dates.format_date(date, ex["pattern"], locale=ex["locale"])
            assert dates.normalise_text(rendered) == ex["source"]
            assert ex["pattern"] == dates.resolve_pattern(ex["format"], ex["locale"])
            if ex["format"] in ("short", "medium", "long", "full"):
                cldr = babel.dates.get_date_format(ex["format"], ex["locale"]).pattern
                assert ex["pattern"] == cldr.replace("yy", "y")  # CLDR's, year widened
            assert str(date.year) in ex["source"] and "\u00a0" not in ex["source"]


def test_dates_alignment_points_at_copied_characters(dates_builds):
    for split in SPLITS:
        for ex in dates_builds[0][split]:
            source, target, alignment = ex["source"], ex["target"], ex["alignment"]
            assert len(alignment) == len(target) == 10
            for i, j in enumerate(alignment):
                assert j == -1 or source[j] == target[i]
            assert all(j >= 0 for j in alignment[:4])  # the year is always copied
            assert alignment[4] == alignment[7] == -1
            if re.fullmatch(r"[\d./-]+", source):  # numeric: day and month digits copied
                assert alignment[6] >= 0 and alignment[9] >= 0


def test_dates_numeric_sources_are_unambiguous(dates_builds):
    for split in SPLITS:
        for ex in dates_builds[0][split]:
            date = datetime.date.fromisoformat(ex["target"])
            if ex["locale"] == "en_US" and ex["format"] == "short":
                # M/d/y would read as d/M/y (es_ES short) unless the day cannot be a month.
                assert date.day > 12 or date.day == date.month
    reader = dates._NumericReader([("en_US", "M/d/y"), ("es_ES", "d/M/y"), ("de_DE", "dd.MM.y")])
    assert reader.readings("3/5/1950") == {datetime.date(1950, 3, 5), datetime.date(1950, 5, 3)}
    assert reader.readings("3/15/1950") == {datetime.date(1950, 3, 15)}
    assert reader.readings("03.05.1950") == {datetime.date(1950, 5, 3)}


def test_dates_rendering_helpers():
    assert dates.resolve_pattern("short", "en_US") == "M/d/y"  # CLDR's M/d/yy, widened
    assert dates.resolve_pattern("short", "de_DE") == "dd.MM.y"
    assert dates.resolve_pattern("d 'yy' yy", "en_US") == "d 'yy' y"
    assert dates.normalise_text("3\u202fmai\u00a01950\u200e") == "3 mai 1950"
    source, spans = dates.render(datetime.date(1950, 3, 5), "en_US", "M/d/y")
    assert source == "3/5/1950"
    assert dates.gold_alignment(source, "1950-03-05", spans) == [4, 5, 6, 7, -1, -1, 0, -1, -1, 2]
    source, spans = dates.render(datetime.date(1950, 3, 15), "de_DE", "EEEE, d. MMMM y")
    assert source == "Mittwoch, 15. März 1950"
    assert dates.gold_alignment(source, "1950-03-15", spans) == [
        19,
        20,
        21,
        22,
        -1,
        -1,
        -1,
        -1,
        10,
        11,
    ]


def test_load_split_decodes_mocked_str_text():
    with tfds.testing.mock_data(num_examples=3):
        examples = load_split("dates", "train")
    assert len(examples) == 3
    assert all(isinstance(ex["source"], str) for ex in examples)


def test_processes_that_need_the_same_data_set_build_it_once(tmp_path, monkeypatch):
    """`prepared` holds a lock on the data directory while it builds: two builders of one data
    set never run at once (each opens the lock file itself, as two processes would)."""
    import threading
    import time

    from attnlab.data import builders

    spans = []

    class SlowBuilder:
        name, data_dir_root = "attnlab_dates", str(tmp_path)

        def download_and_prepare(self):
            start = time.monotonic()
            time.sleep(0.1)
            spans.append((start, time.monotonic()))

    monkeypatch.setattr(builders.tfds, "builder", lambda *args, **kwargs: SlowBuilder())
    threads = [threading.Thread(target=builders.prepared, args=("dates",)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spans.sort()
    assert len(spans) == 3
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))  # one at a time
    assert (tmp_path / ".attnlab_dates.lock").exists()
