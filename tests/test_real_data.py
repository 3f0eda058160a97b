"""Real data through the runner: dates (built locally), a TFDS translation set under
`tfds.testing.mock_data`, text metrics in evaluation, the length policy, and `predict`."""

import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow_datasets as tfds

from attnlab import runner, train
from attnlab.config import default_config, quick
from attnlab.data.pipeline import get_datasets

TED = "tfds:ted_hrlr_translate/pt_to_en"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


def tiny(name: str, data_dir: str):
    c = quick(default_config())
    d = c.data
    d.name, d.data_dir = name, data_dir
    d.num_train, d.num_valid, d.num_test, d.num_long = 640, 64, 64, 0
    d.min_len, d.max_len, d.max_tgt_len = 1, 32, 12  # two source buckets, one target bucket
    d.eval_batch_size, d.bucket_step = 64, 16
    c.model.encoder.hidden_dim = c.model.decoder_hidden_dim = c.model.attention.attn_dim = 16
    c.train.num_steps, c.train.log_every, c.train.eval_every = 20, 10, 20
    c.train.ckpt_every, c.train.num_heatmaps = 20, 1
    return c


@pytest.fixture(scope="module")
def dates_run(data_dir, tmp_path_factory):
    """One short dates run, decoded with a beam of 2 at the end (shared by two tests)."""
    config = tiny("dates", data_dir)
    config.eval.beam_size = 2
    workdir = tmp_path_factory.mktemp("dates_run")
    return workdir, runner.train_and_evaluate(config, str(workdir))


def test_dates_train_with_beam_search_and_alignment_metrics(dates_run):
    _, summary = dates_run
    assert summary["status"] == "completed" and summary["decoding"].startswith("beam 2")
    assert 0.0 <= summary["test/seq_accuracy"] <= 1.0
    assert 0.0 <= summary["eval/align_accuracy"] <= 1.0  # dates have gold year alignments
    assert "eval_long/loss" not in summary  # real data: no longer split
    counts = summary["data_filter"]["train"]
    assert counts["total"] == 640 and counts["kept"] == 640 - counts["dropped_long"]
    assert summary["compiled_programs"]["final_generate"] >= 1


def test_overlong_sequences_are_dropped_or_truncated_and_counted(data_dir):
    config = tiny("dates", data_dir)
    config.data.max_len = 12  # most rendered dates are longer
    config.data.num_train = 200
    dropped = get_datasets(config.data, seed=0)
    counts = dropped.filter_counts["train"]
    assert counts["dropped_long"] > 0 and counts["kept"] == 200 - counts["dropped_long"]
    assert max(len(ex.src) for ex in dropped.examples["train"]) <= 12
    config.data.overlong = "truncate"
    cut = get_datasets(config.data, seed=0)
    assert cut.filter_counts["train"]["truncated"] == counts["dropped_long"]
    assert len(cut.examples["train"]) == 200
    assert max(len(ex.src) for ex in cut.examples["train"]) == 12
    # Gold positions past the cut are marked undefined, never out of range.
    assert all((ex.align < len(ex.src)).all() for ex in cut.examples["train"])
    # The training order is a pure function of the step: a resumed run sees the same batches.
    again = get_datasets(config.data, seed=0)
    for step in (0, 7, 31):
        for key, value in cut.train.batch(step).items():
            np.testing.assert_array_equal(value, again.train.batch(step)[key])


def test_tfds_translation_by_name_trains_under_mock_data(tmp_path):
    config = tiny(TED, str(tmp_path / "tfds"))
    config.data.tokenizer, config.data.subword_vocab_size = "sentencepiece", 40
    config.data.max_len = config.data.max_tgt_len = 64
    with tfds.testing.mock_data(num_examples=640):
        data = get_datasets(config.data, seed=0)
        summary = runner.train_and_evaluate(config, str(tmp_path / "run"))
    assert len(data.examples["train"]) == 640 and data.text_metrics == "bleu"
    assert data.src_vocab.size <= 40 + 4  # pieces plus the reserved ids
    assert summary["status"] == "completed"
    for key in ("eval/bleu", "eval/chrf", "test/bleu", "test/chrf"):
        assert 0.0 <= summary[key] <= 100.0, key


def test_missing_tfds_data_set_says_what_to_run(tmp_path):
    command = [sys.executable, "-m", "attnlab", "train", "--config=configs/copy.py:quick"]
    command += [f"--workdir={tmp_path / 'run'}", f"--config.data.name={TED}"]
    command += [f"--config.data.data_dir={tmp_path / 'empty'}"]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=repo)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "download_and_prepare" in out.stderr and "ted_hrlr_translate" in out.stderr
    assert "Traceback" not in out.stderr


def test_g2p_scoring_counts_a_word_right_when_any_pronunciation_matches():
    from attnlab.data.corpora import SpaceTokenizer

    prons = ["T AH M EY T OW", "T AH M AA T OW"]
    vocab = SpaceTokenizer.train(prons).vocab
    data = types.SimpleNamespace(
        text_metrics="g2p",
        tgt_vocab=vocab,
        detokenize=" ".join,
        references={"test": [[p.split() for p in prons]]},
    )
    scorer = train.TextScorer(data, "test", num_seeds=2)
    second = vocab.encode(["T", "AH", "M", "AA", "T", "OW", "</s>"])
    wrong = vocab.encode(["T", "AH", "M", "T", "OW", "</s>", "<pad>"])
    tokens = np.stack([second, wrong])[:, None, :]  # [K=2 seeds, B=1, T]
    scorer.add(tokens, np.array([[7], [6]]), tgt_len=np.array([7]))
    assert scorer.metrics(0) == {"per": 0.0, "wer": 0.0}  # matches the second reference
    assert scorer.metrics(1) == {"per": pytest.approx(1 / 6), "wer": 1.0}  # one deletion


def test_predict_cli_reads_stdin_counts_unknown_and_empty_lines(
    tmp_path, dates_run, monkeypatch, capsys
):
    import io

    from attnlab.__main__ import main

    workdir, _ = dates_run
    lines = ["3 March 1999", "", "12/5/2001 ☃"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines) + "\n"))
    command = ["predict", f"--workdir={workdir}", f"--heatmaps={tmp_path / 'maps'}"]
    assert main([*command, "--beam_size=2"]) == 0  # the command line, in this process
    out = capsys.readouterr()
    predictions = out.out.split("\n")[:-1]
    assert len(predictions) == 3 and predictions[1] == ""
    assert "1 unknown source tokens" in out.err and "1 empty lines" in out.err
    assert sorted(os.listdir(tmp_path / "maps")) == ["input_0000.png", "input_0002.png"]
    # The same model in-process, greedy: the output is what the run's own decoder produces.
    from attnlab.predict import Predictor

    predictor = Predictor(str(workdir), beam_size=1)
    first = predictor.predict(lines[:1])[0]
    # One row per output token, plus the end token's row when it was produced.
    assert len(first.output) <= len(first.weights) <= len(first.output) + 1
    assert first.weights.shape[1] == len(first.source)
    np.testing.assert_allclose(first.weights.sum(-1), 1.0, atol=1e-5)
    assert json.load(open(workdir / "config.json"))["data"]["name"] == "dates"


def test_limits_that_leave_nothing_are_a_config_error(data_dir):
    from attnlab.config_lib import ConfigError

    config = tiny("dates", data_dir)
    config.data.max_len = 2  # no rendered date is this short
    with pytest.raises(ConfigError, match="0 of 640 'train' examples are left.*truncate"):
        get_datasets(config.data, seed=0)
