"""Faults on purpose: signals, a resume in the middle of a log window, a work directory that holds
another run."""

import ast
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from test_train import _records, _results, tiny_config

from attnlab import runner
from attnlab.config_lib import ConfigError
from attnlab.writers import read_jsonl

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_resume_inside_a_log_window_writes_the_same_log(tmp_path):
    """Checkpoints at 15 and 30 fall inside the 10-step log windows: the window's sums travel
    with the checkpoint, so the resumed run's log lines equal the uninterrupted run's."""
    config = tiny_config()
    config.train.ckpt_every, config.train.max_to_keep = 15, 5
    full = str(tmp_path / "full")
    summary_full = runner.train_and_evaluate(config, full)
    stopped = str(tmp_path / "stopped")
    shutil.copytree(full, stopped)
    for step in ("30", "40"):
        shutil.rmtree(os.path.join(stopped, "checkpoints", step))
    os.remove(os.path.join(stopped, "summary.json"))
    summary_resumed = runner.train_and_evaluate(config, stopped)
    assert _results(summary_resumed) == _results(summary_full)
    assert _records(stopped) == _records(full)


def test_a_workdir_with_another_config_is_refused_unless_forced(tmp_path):
    config = tiny_config()
    config.train.num_steps = 20
    runner.train_and_evaluate(config, str(tmp_path))
    other = tiny_config()
    other.train.num_steps = 20
    other.optim.learning_rate, other.model.score = 1e-3, "general"
    with pytest.raises(ConfigError) as err:
        runner.train_and_evaluate(other, str(tmp_path))
    message = str(err.value)
    assert "optim.learning_rate: 0.003 -> 0.001" in message
    assert "model.score: 'additive' -> 'general'" in message and "--force" in message
    other.model.score = "additive"  # same parameter shapes: the checkpoint still fits
    summary = runner.train_and_evaluate(other, str(tmp_path), force=True)
    assert summary["status"] == "completed"
    assert json.load(open(tmp_path / "config.json"))["optim"]["learning_rate"] == 1e-3


def _train_command(workdir, *overrides):
    command = [sys.executable, "-m", "attnlab", "train", "--config=configs/reverse.py:quick"]
    command += [f"--workdir={workdir}", "--config.train.loggers="]
    return command + [f"--config.{o}" for o in overrides]


# The data and model of `test_train.tiny_config`, as command-line overrides.
TINY_MODEL = (
    "data.num_train=640",
    "data.num_valid=64",
    "data.num_test=64",
    "data.num_long=64",
    "data.eval_batch_size=64",
    "model.encoder.hidden_dim=16",
    "model.decoder_hidden_dim=16",
    "model.attention.attn_dim=16",
)
TINY = TINY_MODEL + (
    "train.num_steps=3000",
    "train.log_every=10",
    "train.eval_every=3000",
    "train.ckpt_every=1000",
    "train.num_heatmaps=0",
)


@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)]
)
def test_a_signal_saves_a_checkpoint_and_the_same_command_resumes(tmp_path, signum):
    workdir = tmp_path / "run"
    env = dict(os.environ, JAX_DISABLE_MOST_OPTIMIZATIONS="true")
    proc = subprocess.Popen(
        _train_command(workdir, *TINY), cwd=REPO, env=env, stderr=subprocess.PIPE, text=True
    )
    log = workdir / "metrics.jsonl"
    deadline = time.time() + 240
    while not (log.exists() and log.read_text().count("\n") >= 2) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, stderr[-2000:]
    assert "checkpoint saved" in stderr and "Traceback" not in stderr
    summary = json.load(open(workdir / "summary.json"))
    assert summary["status"] == "interrupted"
    saved = summary["step"]
    assert saved >= 20 and os.path.isdir(workdir / "checkpoints" / str(saved))
    steps = [r["step"] for r in read_jsonl(str(log))]
    assert steps == list(range(10, steps[-1] + 1, 10)) and steps[-1] <= saved
    # The same command, shortened so the test stays quick, resumes from that checkpoint.
    end = (saved // 10 + 2) * 10  # a log step past the saved one (the saved step may not be)
    short = [o.replace("train.num_steps=3000", f"train.num_steps={end}") for o in TINY]
    out = subprocess.run(
        _train_command(workdir, *short) + ["--force"], cwd=REPO, env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"resumed from the checkpoint at step {saved}" in out.stderr
    steps = [r["step"] for r in read_jsonl(str(log))]
    assert steps == list(range(10, end + 1, 10))  # no step missing or written twice


KILL_RUN = TINY_MODEL + (
    "train.num_steps=80",
    "train.log_every=10",
    "train.eval_every=40",
    "train.ckpt_every=5",  # saves every few steps: kills land before, during and after saves
    "train.max_to_keep=3",
    "train.num_heatmaps=1",
)


def _final_params(workdir):
    """The parameters of the last checkpoint of a finished KILL_RUN run."""
    from attnlab.config_lib import apply_overrides, load_config

    config = load_config(os.path.join(REPO, "configs", "reverse.py") + ":quick")
    overrides = (o.split("=", 1) for o in KILL_RUN)
    config = apply_overrides(config, {k: ast.literal_eval(v) for k, v in overrides})
    _, state, step = runner.restore(config, str(workdir))
    assert step == 80
    return state


def _kill_and_resume(workdir, kill_after_line: int, env) -> int:
    """Starts the run, SIGKILLs it once `metrics.jsonl` has `kill_after_line` lines (plus a
    short random delay), then re-runs the same command to the end; returns the steps saved."""
    import random

    proc = subprocess.Popen(_train_command(workdir, *KILL_RUN), cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    log = workdir / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and log.read_text().count("\n") >= kill_after_line:
            break
        time.sleep(0.05)
    time.sleep(random.Random(kill_after_line).uniform(0.0, 0.5))
    proc.kill()  # SIGKILL: no handler runs, a save may be half written
    proc.wait()
    saved = sorted(int(s) for s in os.listdir(workdir / "checkpoints") if s.isdigit())
    out = subprocess.run(_train_command(workdir, *KILL_RUN), cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return saved[-1] if saved else 0


def _check_identical(run, reference):
    import numpy as np

    a, b = (json.load(open(d / "summary.json")) for d in (run, reference))
    assert _results(a) == _results(b)
    assert _records(str(run)) == _records(str(reference))
    pa, pb = _final_params(str(run)), _final_params(str(reference))
    for x, y in zip(jax_leaves(pa), jax_leaves(pb), strict=True):
        np.testing.assert_array_equal(x, y)


def jax_leaves(tree):
    import jax

    return jax.tree.leaves(tree)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("uninterrupted")
    env = dict(os.environ, JAX_DISABLE_MOST_OPTIMIZATIONS="true")
    out = subprocess.run(_train_command(workdir, *KILL_RUN), cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return workdir, env


def test_sigkill_then_the_same_command_finishes_bit_identical(tmp_path, uninterrupted):
    reference, env = uninterrupted
    _kill_and_resume(tmp_path, kill_after_line=3, env=env)
    _check_identical(tmp_path, reference)


@pytest.mark.slow
@pytest.mark.parametrize("kill_after_line", [0, 1, 2, 4, 5, 6, 7])
def test_sigkill_campaign(tmp_path, uninterrupted, kill_after_line):
    """`python -m pytest -m slow tests/test_reliability.py`: a kill at 7 more points."""
    reference, env = uninterrupted
    _kill_and_resume(tmp_path, kill_after_line, env)
    _check_identical(tmp_path, reference)


def test_two_identical_runs_write_byte_identical_results(tmp_path):
    config = tiny_config()
    config.train.num_steps = 20
    for name in ("a", "b"):
        runner.train_and_evaluate(config, str(tmp_path / name))
    for name in ("metrics.jsonl", "summary.json", "config.json", "attention/examples.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "timing.json").exists()  # speed lives apart and may differ


def test_a_corrupted_checkpoint_is_a_clear_error_naming_what_to_delete(tmp_path):
    config = tiny_config()
    config.train.num_steps, config.train.loggers = 20, ""
    runner.train_and_evaluate(config, str(tmp_path))
    os.remove(tmp_path / "summary.json")
    for root, _, files in os.walk(tmp_path / "checkpoints" / "20"):
        for name in files:  # damage every array file of the latest checkpoint
            with open(os.path.join(root, name), "r+b") as f:
                f.truncate(max(0, os.path.getsize(f.name) // 2))
    same = TINY_MODEL + ("train.num_steps=20", "train.log_every=10", "train.eval_every=20")
    same += ("train.ckpt_every=20", "train.num_heatmaps=1")
    out = subprocess.run(_train_command(tmp_path, *same), cwd=REPO, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert out.returncode == 2, out.stderr[-2000:]
    assert "cannot restore the checkpoint of step 20" in out.stderr and "Delete" in out.stderr
    assert "Traceback" not in out.stderr


def test_predict_without_a_run_or_a_checkpoint_says_what_is_missing(tmp_path):
    command = [sys.executable, "-m", "attnlab", "predict", f"--workdir={tmp_path}"]
    out = subprocess.run(command, input="1 2\n", capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "config.json not found" in out.stderr
    config = tiny_config()
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    out = subprocess.run(command, input="1 2\n", capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "no checkpoint" in out.stderr, out.stderr[-2000:]


def test_a_second_training_process_in_the_same_workdir_is_refused(tmp_path):
    from attnlab.locks import DirectoryLock

    with DirectoryLock(str(tmp_path), "run.lock", "training run"):
        with pytest.raises(ConfigError, match=f"another training run \\(pid {os.getpid()}"):
            runner.train_and_evaluate(tiny_config(), str(tmp_path))
    assert not (tmp_path / "metrics.jsonl").exists()  # refused before any work


@pytest.mark.slow
def test_killing_a_sweep_stops_its_trial_and_the_re_run_finishes_it(tmp_path):
    """SIGKILL the sweep: its running trial gets SIGTERM (no orphan), saves a checkpoint; the
    same sweep command then skips nothing it should not and resumes the trial."""
    from test_sweep import TWO_TRIALS

    config = tmp_path / "two.py"
    config.write_text(TWO_TRIALS)
    command = [sys.executable, "-m", "attnlab", "sweep", f"--config={config}"]
    command += [f"--workdir={tmp_path / 's'}", "--config.train.num_steps=400"]
    command += ["--config.train.log_every=2", "--config.train.ckpt_every=100"]
    env = dict(os.environ, JAX_DISABLE_MOST_OPTIMIZATIONS="true")
    sweep_proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)  # fmt: skip
    log = tmp_path / "s" / "seed=0" / "metrics.jsonl"
    deadline = time.time() + 240
    while not (log.exists() and log.read_text().count("\n") >= 2) and time.time() < deadline:
        time.sleep(0.1)
    sweep_proc.kill()
    sweep_proc.wait()
    summary = tmp_path / "s" / "seed=0" / "summary.json"
    deadline = time.time() + 120
    while not summary.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert json.load(open(summary))["status"] == "interrupted"  # the orphan stopped cleanly
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "2 of 2 trials completed" in out.stdout
    steps = [r["step"] for r in read_jsonl(str(log))]
    assert steps == list(range(2, 401, 2))  # resumed: nothing missing, nothing twice


def test_repeated_sigterm_is_ignored_a_second_ctrl_c_is_not():
    with runner.StopOnSignal() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)  # e.g. a dying sweep: still saving, no abort
        time.sleep(0.01)  # handlers run between bytecodes
        assert stop.signum == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
    assert signal.getsignal(signal.SIGTERM) is not stop._handle  # handlers restored
