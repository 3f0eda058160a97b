"""The runner end to end: convergence on reverse, the work directory contract, exact resume."""

import glob
import gzip
import json
import os
import shutil

import jax
import numpy as np
import pytest

from attnlab import runner
from attnlab.checkpoints import Checkpointer
from attnlab.config_lib import load_config
from attnlab.writers import read_jsonl

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMING_KEYS = {"train/tokens_per_sec", "compile_seconds", "wall_seconds", "compiled_programs"}


def quick_config(**model):
    config = load_config(os.path.join(REPO, "configs", "reverse.py") + ":quick")
    for key, value in model.items():
        config.model[key] = value
    return config


@pytest.fixture(scope="module")
def optimized():
    """Convergence runs are dominated by 600 steps, not compiles: use optimised programs."""
    jax.config.update("jax_disable_most_optimizations", False)
    yield
    jax.config.update("jax_disable_most_optimizations", True)


@pytest.fixture(scope="module")
def converged(optimized, tmp_path_factory):
    """The three quick runs the convergence tests read (each trains once per test session).

    The Luong-order run computes in bfloat16 (`model.dtype`): its convergence is the test of
    mixed precision, and float32 Luong numerics are checked step by step against the NumPy
    reference in `test_decoders.py`."""
    runs = {
        "bahdanau": quick_config(decoder="bahdanau", score="additive"),
        "luong": quick_config(decoder="luong", score="general", dtype="bfloat16"),
        "none": quick_config(decoder="bahdanau", score="none"),
    }
    runs["none"].train.profile_steps = 3
    out = {}
    for name, config in runs.items():
        workdir = str(tmp_path_factory.mktemp(name))
        out[name] = (workdir, runner.train_and_evaluate(config, workdir))
    return out


@pytest.mark.parametrize("order", ["bahdanau", "luong"])
def test_quick_reverse_converges_with_attention(converged, order):
    """Both orders learn the quick task; the Luong run in bfloat16 (bfloat16 matmuls and
    activations, float32 parameters and loss)."""
    workdir, summary = converged[order]
    assert summary["eval/seq_accuracy"] >= 0.95, summary
    assert summary["eval/align_accuracy"] >= 0.9, summary
    assert summary["test/seq_accuracy"] >= 0.9, summary
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["model"]["dtype"] == ("bfloat16" if order == "luong" else "float32")


def test_profile_steps_write_a_trace_of_those_steps(converged):
    """`train.profile_steps=3`: a profiler trace in workdir/profile holding the three steps
    after the first (steps 2-4, annotated 1-3 from 0), and nothing for later steps."""
    workdir, _ = converged["none"]
    traces = glob.glob(
        os.path.join(workdir, "profile", "plugins", "profile", "*", "*.trace.json.gz")
    )
    assert len(traces) == 1, traces
    assert glob.glob(os.path.join(os.path.dirname(traces[0]), "*.xplane.pb"))
    with gzip.open(traces[0], "rt") as f:
        events = json.load(f)["traceEvents"]
    steps = {int(e["args"]["step_num"]) for e in events if e.get("name") == "train" and "args" in e}
    assert steps == {1, 2, 3}, steps


def test_no_attention_baseline_is_worse_on_the_longer_split(converged):
    none = converged["none"][1]
    for order in ("bahdanau", "luong"):
        attn = converged[order][1]
        assert none["eval_long/seq_accuracy"] < attn["eval_long/seq_accuracy"] - 0.1
        assert none["eval_long/token_accuracy"] < attn["eval_long/token_accuracy"]
        # (Not the loss: on unseen lengths an attention model can be right more often and still
        # have the higher loss, being confidently wrong where it errs.)
    assert "eval/align_accuracy" not in none  # no weights, so no alignment to score


def test_work_directory_contract(converged):
    workdir, summary = converged["bahdanau"]
    config = json.load(open(os.path.join(workdir, "config.json")))
    assert config["model"]["score"] == "additive" and config["train"]["num_steps"] == 600
    records = read_jsonl(os.path.join(workdir, "metrics.jsonl"))
    assert [r["step"] for r in records] == list(range(100, 601, 100))
    for key in ("train/loss", "train/token_accuracy", "train/grad_norm"):
        assert all(np.isfinite(r[key]) for r in records)
    timing = read_jsonl(os.path.join(workdir, "timing.jsonl"))  # speed, apart from results
    assert [r["step"] for r in timing] == list(range(100, 601, 100))
    assert all(r["train/tokens_per_sec"] > 0 for r in timing)
    assert not any("train/tokens_per_sec" in r for r in records)
    evals = [r for r in records if "eval/loss" in r]
    assert [r["step"] for r in evals] == [300, 600]
    for key in (
        "eval/token_accuracy",
        "eval/seq_accuracy",
        "eval/align_accuracy",
        "eval/aer",
        "eval/attention_entropy",
        "eval_long/seq_accuracy",
        "eval_long/align_accuracy",
    ):
        assert key in evals[-1] and 0.0 <= evals[-1][key] <= 1.0
    assert evals[-1]["eval/aer"] == pytest.approx(1 - evals[-1]["eval/align_accuracy"])
    # The loss goes down: the last window is far below the first.
    assert records[-1]["train/loss"] < 0.2 * records[0]["train/loss"]
    saved = json.load(open(os.path.join(workdir, "summary.json")))
    assert saved["status"] == "completed" and saved["step"] == 600
    assert saved["num_params"] > 0
    seconds = json.load(open(os.path.join(workdir, "timing.json")))
    for key in ("train/tokens_per_sec", "compile_seconds", "wall_seconds"):
        assert seconds[key] > 0 and key not in saved
    assert seconds["compiled_programs"]["train"] == 1  # one length bucket -> one train program
    assert "compiled_programs" not in saved  # a fact of this process, not a result
    assert Checkpointer(os.path.join(workdir, "checkpoints"), 2).latest_step() == 600
    assert len(saved["attention_maps"]) == 4
    tb = os.path.join(workdir, "tb")
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(tb))
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(os.path.join(tb, "hparams")))
    by_length = saved["seq_accuracy_by_length"]
    assert sorted(int(n) for n in by_length["eval"]) == list(range(3, 11))  # training lengths
    assert sorted(int(n) for n in by_length["eval_long"]) == list(range(11, 16))
    assert sum(total for _, total in by_length["eval"].values()) == 256  # every example once
    for path in saved["attention_maps"]:
        with open(os.path.join(workdir, path), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def tiny_config():
    config = quick_config()
    d, t = config.data, config.train
    d.num_train, d.num_valid, d.num_test, d.num_long = 640, 64, 64, 64
    d.eval_batch_size = 64
    config.model.encoder.hidden_dim = config.model.decoder_hidden_dim = 16
    config.model.attention.attn_dim = 16
    t.num_steps, t.log_every, t.eval_every, t.ckpt_every, t.num_heatmaps = 40, 10, 20, 20, 1
    return config


def _results(summary):
    return {k: v for k, v in summary.items() if k not in TIMING_KEYS}


def _records(workdir):
    records = read_jsonl(os.path.join(workdir, "metrics.jsonl"))
    return [{k: v for k, v in r.items() if k != "train/tokens_per_sec"} for r in records]


@pytest.mark.parametrize("kind", ["soft", "hard"])
def test_resume_after_a_stop_finishes_exactly_like_an_uninterrupted_run(tmp_path, kind):
    config = tiny_config()
    if kind == "hard":  # sampled positions and a moving-average baseline in the state
        config.model.decoder, config.model.score = "luong", "general"
        config.model.attention.kind = "hard"
    full = str(tmp_path / "full")
    summary_full = runner.train_and_evaluate(config, full)
    # A run stopped after step 20 leaves the checkpoint at 20 and the log up to ~20 (and maybe
    # a few lines past it, written before the stop): make that state from the full run.
    stopped = str(tmp_path / "stopped")
    shutil.copytree(full, stopped)
    shutil.rmtree(os.path.join(stopped, "checkpoints", "40"))
    os.remove(os.path.join(stopped, "summary.json"))
    summary_resumed = runner.train_and_evaluate(config, stopped)
    assert _results(summary_resumed) == _results(summary_full)
    assert _records(stopped) == _records(full)  # no duplicated or missing steps, same values
    assert [r["step"] for r in _records(stopped)] == [10, 20, 30, 40]
    restored = [runner.restore(config, d)[1] for d in (full, stopped)]  # latest checkpoints
    jax.tree.map(np.testing.assert_array_equal, restored[0].params, restored[1].params)
    np.testing.assert_array_equal(restored[0].reward_baseline, restored[1].reward_baseline)


def test_rerun_of_a_finished_run_only_re_evaluates(tmp_path):
    config = tiny_config()
    first = runner.train_and_evaluate(config, str(tmp_path))
    timing = (tmp_path / "timing.json").read_bytes()
    second = runner.train_and_evaluate(config, str(tmp_path))
    assert _results(second) == _results(first)
    assert [r["step"] for r in read_jsonl(str(tmp_path / "metrics.jsonl"))] == [10, 20, 30, 40]
    assert (tmp_path / "timing.json").read_bytes() == timing  # the training's speed stays


def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    config = tiny_config()
    config.optim.optimizer, config.optim.grad_clip_norm = "sgd", 0.0
    config.optim.learning_rate, config.optim.warmup_steps = 1e25, 0
    with pytest.raises(runner.NonFiniteLossError, match="between steps 1 and 10"):
        runner.train_and_evaluate(config, str(tmp_path))
    summary = json.load(open(tmp_path / "summary.json"))
    assert summary["status"] == "failed" and "non-finite" in summary["reason"]
    assert Checkpointer(str(tmp_path / "checkpoints"), 2).latest_step() is None


def _close(a, b, keys=("eval/loss", "test/loss", "eval_long/loss")):
    for key in keys:
        assert a[key] == pytest.approx(b[key], rel=1e-4), key


def test_num_seeds_matches_separate_runs_and_writes_a_directory_per_seed(tmp_path):
    config = tiny_config()
    config.train.num_steps = 20
    singles = []
    for seed in (3, 4):
        single = tiny_config()
        single.train.num_steps, single.seed = 20, seed
        singles.append(runner.train_and_evaluate(single, str(tmp_path / f"single_{seed}")))
    config.seed, config.num_seeds, config.seed_batches = 3, 2, "independent"
    together = runner.train_and_evaluate(config, str(tmp_path / "together"))
    for got, want in zip(together["per_seed"], singles, strict=True):
        _close(got, want)
    top = json.load(open(tmp_path / "together" / "summary.json"))
    assert top["seed_dirs"] == ["seed_3", "seed_4"] and top["status"] == "completed"
    for seed in (3, 4):
        run_dir = tmp_path / "together" / f"seed_{seed}"
        saved = json.load(open(run_dir / "config.json"))
        assert saved["seed"] == seed and saved["num_seeds"] == 1
        assert [r["step"] for r in read_jsonl(str(run_dir / "metrics.jsonl"))] == [10, 20]
        assert json.load(open(run_dir / "summary.json"))["trained_with_seeds"] == [3, 4]
    # compare reads the seed directories as two runs of one variant, not the container
    from attnlab import compare

    assert len(compare.find_runs([str(tmp_path / "together")])) == 2


def test_num_seeds_with_shared_batches(tmp_path):
    config = tiny_config()
    config.train.num_steps, config.num_seeds = 20, 2
    together = runner.train_and_evaluate(config, str(tmp_path / "shared"))
    single = tiny_config()
    single.train.num_steps = 20
    alone = runner.train_and_evaluate(single, str(tmp_path / "alone"))
    _close(together["per_seed"][0], alone)  # seed 0 sees exactly its own batches
    assert together["per_seed"][1]["eval/loss"] != together["per_seed"][0]["eval/loss"]
