"""Model families are plug-ins: a toy family registered at run time (tests/toy_family.py, a
config file that defines it) gets checkpoints, the log, exact resume after a signal and a
kill, and `compare`, from the runner as it is."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from attnlab import compare, families, runner
from attnlab.config_lib import ConfigError, load_config
from attnlab.writers import read_jsonl

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOY = os.path.join(REPO, "tests", "toy_family.py")


def _start(workdir, env):
    command = [sys.executable, "-m", "attnlab", "train", f"--config={TOY}", f"--workdir={workdir}"]
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _wait_for_lines(proc, log, lines: int):
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and log.read_text().count("\n") >= lines:
            return
        time.sleep(0.02)
    raise AssertionError(f"the run ended or stalled before {lines} log lines: {proc.poll()}")


def test_a_family_registered_at_run_time_gets_the_whole_runner(tmp_path):
    config = load_config(TOY)  # executing the file registers the family
    assert families.get("toy").name == "toy" and "toy" in families.names()
    full = tmp_path / "full"
    summary = runner.train_and_evaluate(config, str(full))
    assert summary["status"] == "completed" and summary["step"] == 60
    records = read_jsonl(full / "metrics.jsonl")
    assert [r["step"] for r in records] == [10, 20, 30, 40, 50, 60]
    evals = [r["eval/mse"] for r in records if "eval/mse" in r]
    assert len(evals) == 3 and evals[-1] < 0.5 * evals[0]  # it learns
    assert summary["test/mse"] < 0.1  # the noise is 0.01 in variance
    timing = json.load(open(full / "timing.json"))
    assert timing["train/examples_per_sec"] > 0 and "train/examples_per_sec" not in records[0]

    # SIGTERM mid-run: a checkpoint, status "interrupted"; the same command again, SIGKILLed;
    # then the run finishes with the same files and parameters as the uninterrupted one.
    stopped = tmp_path / "stopped"
    # the same XLA options as this process (conftest.py), so the programs are the same
    env = dict(os.environ, TOY_STEP_SECONDS="0.05", JAX_DISABLE_MOST_OPTIMIZATIONS="true")
    proc = _start(stopped, env)
    _wait_for_lines(proc, stopped / "metrics.jsonl", 1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM, proc.stderr.read().decode()[-2000:]
    interrupted = json.load(open(stopped / "summary.json"))
    assert interrupted["status"] == "interrupted" and interrupted["step"] >= 10
    proc = _start(stopped, env)
    _wait_for_lines(proc, stopped / "metrics.jsonl", 3)
    proc.kill()
    proc.wait(timeout=60)
    resumed = runner.train_and_evaluate(config, str(stopped))
    assert resumed["test/mse"] == summary["test/mse"]
    for name in ("metrics.jsonl", "summary.json"):
        assert (stopped / name).read_bytes() == (full / name).read_bytes(), name
    states = [runner.restore(config, str(d))[1] for d in (full, stopped)]
    jax.tree.map(np.testing.assert_array_equal, states[0].params, states[1].params)
    invocations = json.load(open(stopped / "provenance.json"))["invocations"]
    assert len(invocations) == 3 and invocations[-1]["start_step"] > 0

    # seeds as a batch axis, and compare with the family's metrics and their direction (lower
    # mse is better): the faster learning rate wins on all three seeds
    for name, rate in (("fast", 0.05), ("slow", 0.002)):
        seeds = load_config(TOY)
        seeds.num_seeds, seeds.optim.learning_rate = 3, rate
        runner.train_and_evaluate(seeds, str(tmp_path / "seeds" / name))
    table = compare.compare([str(tmp_path / "seeds")]).splitlines()
    assert "eval/mse" in table[0] and "| 3 |" in table[2]
    assert "learning_rate=0.05" in table[2] and "(best)" in table[2]


def test_an_unknown_family_is_a_config_error_naming_the_known_ones():
    config = load_config(TOY)
    config.family = "nope"
    with pytest.raises(ConfigError, match="config.family='nope' is invalid: must be one of"):
        families.validate(config)


def test_best_metric_must_be_a_metric_of_the_family():
    config = load_config(TOY)
    config.train.best_metric = "eval/seq_accuracy"  # a seq2seq metric
    with pytest.raises(ConfigError, match="train.best_metric='eval/seq_accuracy' is invalid"):
        families.validate(config)
