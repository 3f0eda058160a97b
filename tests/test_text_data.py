"""Translation data: TFDS loading (mocked and a tiny real array_record build), the
missing-dataset error, character and SentencePiece tokenizers, and length filtering."""

import functools
import random
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from attnlab.data import text
from attnlab.data.text import (
    CharTokenizer,
    DatasetNotPreparedError,
    SubwordTokenizer,
    char_vocab,
    length_filter,
    load_pairs,
    parse_tfds_name,
    prepare_command,
    train_sentencepiece,
)
from attnlab.data.vocab import SPECIALS, UNK_ID


class AttnlabTinyTranslate(tfds.core.GeneratorBasedBuilder):
    """A real (not mocked) two-language dataset, built locally as array_record."""

    VERSION = tfds.core.Version("1.0.0")
    PAIRS = [(f"Grüße, Welt {i}!", f"Greetings, world {i}!") for i in range(7)]

    def _info(self):
        # DatasetInfo directly: `dataset_info_from_configs` looks for metadata files in the
        # builder's package, and tests/ is not a package.
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.Translation(languages=("de", "en")),
            supervised_keys=("de", "en"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        return {
            "train": self._generate_examples(self.PAIRS),
            "test": self._generate_examples(self.PAIRS[:1]),  # TFDS refuses empty splits
        }

    def _generate_examples(self, pairs):
        for i, (de, en) in enumerate(pairs):
            yield i, {"de": de, "en": en}


class _BatchedReadMock(tfds.testing.PickableDataSourceMock):
    """`mock_data`'s array_record mock with a working `__getitems__`, counting batched reads.

    tfds 4.9.10 assigns `__getitems__ = partial(_getitems, generator=...)` on the mock instance,
    where (unlike `__getitem__`, a magic method MagicMock binds) nothing passes `self`, so every
    batched read raises TypeError. Binding the mock as `self` fixes it.
    """

    def __setattr__(self, name, value):
        if name == "__getitems__" and isinstance(value, functools.partial):
            inner, mock_self = value, self

            def value(keys):
                mock_self.batched_reads.append(len(keys))
                return inner(mock_self, keys)

        super().__setattr__(name, value)


def _batched_read_mock():
    source = _BatchedReadMock()
    source.return_value = _BatchedReadMock()
    source.return_value.batched_reads = []
    return source


# --- names -----------------------------------------------------------------------------------


def test_parse_tfds_name():
    assert parse_tfds_name("tfds:wmt14_translate/de-en") == "wmt14_translate/de-en"
    assert parse_tfds_name("tfds:ted_hrlr_translate/pt_to_en") == "ted_hrlr_translate/pt_to_en"
    assert parse_tfds_name("tfds:wmt14_translate/de-en:1.0.0") == "wmt14_translate/de-en:1.0.0"
    assert parse_tfds_name("tfds:mnist") == "mnist"


@pytest.mark.parametrize(
    "spec",
    ["wmt14_translate/de-en", "tfds:", "tfds:/de-en", "tfds:wmt14 translate", "tfds:a/b/c",
     "tfds:Wmt14", "tfds:wmt14_translate/de-en:1.0", "TFDS:mnist", "tfds:wmt14_translate/"],
)  # fmt: skip
def test_parse_tfds_name_rejects_malformed(spec):
    with pytest.raises(ValueError, match="TFDS"):
        parse_tfds_name(spec)


# --- loading ---------------------------------------------------------------------------------


def test_load_pairs_mocked_ted_hrlr(tmp_path):
    # Plain mock_data: its batched read is broken (see _BatchedReadMock), so load_pairs falls
    # back to per-record reads; the pairs must still be right.
    name = "ted_hrlr_translate/pt_to_en"
    with tfds.testing.mock_data(num_examples=9):
        pairs = load_pairs(f"tfds:{name}", "train", data_dir=tmp_path)
        source = tfds.data_source(name, split="train", data_dir=tmp_path, download=False)
        expected = [(source[i]["pt"], source[i]["en"]) for i in range(9)]
        swapped = load_pairs(name, "test", data_dir=tmp_path, src_key="en", tgt_key="pt")
        first3 = load_pairs(name, "train", data_dir=tmp_path, max_examples=3)
    assert pairs == expected  # source = "pt", target = "en" (supervised_keys)
    assert all(isinstance(s, str) and isinstance(t, str) for s, t in pairs)
    assert swapped == [(t, s) for s, t in expected]
    assert first3 == expected[:3]


def test_load_pairs_mocked_wmt14_reads_in_chunks(tmp_path, monkeypatch):
    # wmt14_translate is a legacy builder that plain `import tensorflow_datasets` fails to
    # register without h5py; load_pairs registers it.
    monkeypatch.setattr(text, "READ_CHUNK", 4)
    source = _batched_read_mock()
    with tfds.testing.mock_data(num_examples=10, mock_array_record_data_source=source):
        pairs = load_pairs("tfds:wmt14_translate/de-en", "validation", data_dir=tmp_path)
        mocked = tfds.data_source(
            "wmt14_translate/de-en", split="validation", data_dir=tmp_path, download=False
        )
        expected = [(mocked[i]["de"], mocked[i]["en"]) for i in range(10)]
    assert pairs == expected
    assert source.return_value.batched_reads == [4, 4, 2]


def test_load_pairs_real_array_record(tmp_path):
    builder = AttnlabTinyTranslate(data_dir=tmp_path, file_format="array_record")
    builder.download_and_prepare()
    pairs = load_pairs("tfds:attnlab_tiny_translate", "train", data_dir=tmp_path)
    # Real text arrives as bytes and is decoded (UTF-8); the file order is TFDS's shuffle.
    assert sorted(pairs) == sorted(AttnlabTinyTranslate.PAIRS)
    assert all(isinstance(s, str) and isinstance(t, str) for s, t in pairs)
    assert load_pairs("attnlab_tiny_translate", "test", data_dir=tmp_path) == [
        ("Grüße, Welt 0!", "Greetings, world 0!")
    ]
    assert load_pairs("attnlab_tiny_translate", "train", data_dir=tmp_path, max_examples=0) == []
    assert len(load_pairs("attnlab_tiny_translate", "train[:3]", data_dir=tmp_path)) == 3
    with pytest.raises(ValueError, match="split"):
        load_pairs("attnlab_tiny_translate", "validation", data_dir=tmp_path)
    with pytest.raises(ValueError, match="not a feature"):
        load_pairs("attnlab_tiny_translate", "train", data_dir=tmp_path, src_key="fr")


def test_missing_dataset_error_names_the_command(tmp_path, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("load_pairs must not download")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_download)
    name = "ted_hrlr_translate/pt_to_en"
    start = time.perf_counter()
    with pytest.raises(DatasetNotPreparedError) as info:
        load_pairs(f"tfds:{name}", "train", data_dir=tmp_path)
    assert time.perf_counter() - start < 5.0  # no network retries
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    assert name in message
    assert prepare_command(name, str(tmp_path)) in message
    assert (
        "tfds.builder('ted_hrlr_translate/pt_to_en', data_dir="
        f"'{tmp_path}').download_and_prepare(file_format='array_record')" in message
    )
    assert "TFDS_DATA_DIR" in message and "data_dir" in message


def test_unknown_dataset_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="unknown TFDS dataset"):
        load_pairs("tfds:no_such_dataset_xyz", "train", data_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown TFDS dataset"):
        load_pairs("ted_hrlr_translate/xx_to_yy", "train", data_dir=tmp_path)


# --- tokenizers ------------------------------------------------------------------------------


def test_char_vocab_order_and_unknowns():
    vocab = char_vocab(["abca", "cab", "xz"], min_count=1)
    # counts: a 3, b 2, c 2, x 1, z 1 -> frequency, then code point
    assert vocab.tokens == list(SPECIALS) + ["a", "b", "c", "x", "z"]
    assert char_vocab(["abca", "cab", "xz"], min_count=2).tokens[4:] == ["a", "b", "c"]
    assert char_vocab(["xz", "cab", "abca"]).tokens == vocab.tokens  # input order irrelevant

    tok = CharTokenizer.train(["hello world"])
    assert tok.decode(tok.encode("hello world")) == "hello world"
    ids = tok.encode_ids("hello world")
    assert ids.dtype == np.int32 and ids.min() > UNK_ID
    assert tok.decode_ids(ids) == "hello world"
    assert tok.vocab.num_unknown == 0
    ids = tok.encode_ids("hi!!")
    assert list(ids == UNK_ID) == [False, True, True, True]  # "i", "!" unseen
    assert tok.vocab.num_unknown == 3


def _synthetic_corpus(n=300, seed=0):
    rng = random.Random(seed)
    words = (
        "the a cat dog bird sat ran flew on over under mat tree house red blue small big "
        "quickly slowly today yesterday and but"
    ).split()
    return [" ".join(rng.choice(words) for _ in range(rng.randint(1, 9))) for _ in range(n)]


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_sentencepiece_round_trip_and_reserved_ids(model_type, tmp_path):
    corpus = _synthetic_corpus()
    tok = train_sentencepiece(corpus, 60, model_prefix_dir=tmp_path, model_type=model_type)
    again = train_sentencepiece(corpus, 60, model_type=model_type)
    assert again.model_proto == tok.model_proto  # deterministic

    assert tok.vocab.tokens[:4] == list(SPECIALS)
    assert 30 <= len(tok.vocab) <= 63  # soft limit: 60 pieces incl. <unk>, + 3 reserved
    held_out = _synthetic_corpus(50, seed=1) + ["  the  cat ", "the"]  # spaces kept
    for sentence in held_out:
        pieces = tok.encode(sentence)
        assert tok.decode(pieces) == sentence
        ids = tok.encode_ids(sentence)
        assert ids.min() > UNK_ID  # never PAD/BOS/EOS, and every piece is known
        assert tok.decode_ids(ids) == sentence
    assert tok.vocab.num_unknown == 0
    assert any(len(p) > 2 for p in tok.vocab.tokens[4:])  # real subwords, not only characters

    ids = tok.encode_ids("the Ωmega cat ü")  # "Ω" and "ü" never seen in training
    assert int(np.sum(ids == UNK_ID)) == 2
    assert tok.vocab.num_unknown == 2

    loaded = SubwordTokenizer.load(tok.path)
    assert tok.path.parent == tmp_path and tok.path.suffix == ".model"
    assert loaded.vocab.tokens == tok.vocab.tokens
    assert list(loaded.encode_ids(corpus[0])) == list(tok.encode_ids(corpus[0]))


def test_sentencepiece_rejects_bad_arguments():
    with pytest.raises(ValueError, match="model_type"):
        train_sentencepiece(["a b"], 10, model_type="word")
    with pytest.raises(ValueError, match="no text"):
        train_sentencepiece(["", ""], 10)


def test_tokenizers_share_an_interface():
    corpus = _synthetic_corpus(100)
    for tok in (CharTokenizer.train(corpus), train_sentencepiece(corpus, 40)):
        pieces = tok.encode(corpus[0])
        assert isinstance(pieces, list) and all(isinstance(p, str) for p in pieces)
        assert tok.decode(pieces) == corpus[0]
        assert tok.decode_ids(tok.encode_ids(corpus[0])) == corpus[0]


# --- length filter ---------------------------------------------------------------------------


def test_length_filter_drop():
    pairs = [("abc", "xy"), ("", "x"), ("abcdef", "x"), ("a", "xyzw"), ("ab", ""), ("ab", "xyz")]
    kept, counts = length_filter(pairs, max_src_len=3, max_tgt_len=3)
    assert kept == [("abc", "xy"), ("ab", "xyz")]
    assert counts == {"total": 6, "kept": 2, "dropped_empty": 2, "dropped_long": 2, "truncated": 0}


def test_length_filter_truncate_token_lists_and_arrays():
    pairs = [
        (["a", "b", "c", "d"], ["x"]),
        (np.arange(10), np.arange(2)),
        ([], ["x"]),
        (["a"], ["x", "y"]),
    ]
    kept, counts = length_filter(pairs, max_src_len=3, max_tgt_len=1, policy="truncate")
    assert counts == {"total": 4, "kept": 3, "dropped_empty": 1, "dropped_long": 0, "truncated": 3}
    assert kept[0] == (["a", "b", "c"], ["x"])
    assert list(kept[1][0]) == [0, 1, 2] and list(kept[1][1]) == [0]
    assert kept[2] == (["a"], ["x"])


def test_length_filter_rejects_bad_arguments():
    with pytest.raises(ValueError, match="policy"):
        length_filter([], 3, 3, policy="clip")
    with pytest.raises(ValueError, match=">= 1"):
        length_filter([], 0, 3)
    assert length_filter([], 3, 3) == (
        [],
        {"total": 0, "kept": 0, "dropped_empty": 0, "dropped_long": 0, "truncated": 0},
    )
