"""Hostile input and damaged files: each is one line and exit 2 before any work, or a correct
recovery; never a traceback, a hang or a silent loss. The cases of `docs/reliability.md`."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_reliability import TINY_MODEL
from test_train import tiny_config

from attnlab import compare, families, resources, runner, sweep
from attnlab.checkpoints import Checkpointer
from attnlab.config import default_config
from attnlab.config_lib import ConfigError, flatten, load_config
from attnlab.locks import DirectoryLock
from attnlab.ram.config import default_config as ram_default_config
from attnlab.writers import DamagedFileError, read_jsonl

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {"seq2seq": "configs/reverse.py:quick", "ram": "configs/ram_digits.py:quick"}
FIELDS = {
    family: sorted(flatten(make().to_dict()).items())
    for family, make in (("seq2seq", default_config), ("ram", ram_default_config))
}
ABSURD = [
    "many", "", "[1]", "-1", "-7", "0", "nan", "inf", "-inf", "1e300", "maybe", "bogus",
    str(10**9), str(10**12), str(10**20), str(-(10**20)), "0.0", "3.5", "tfds:nonexistent_xyz",
]  # fmt: skip


# Counted over the whole fuzz run, printed by the last test of this file (-n 0 -s shows it).
CAMPAIGN = {"cases": 0, "refused": 0, "accepted": 0}


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzzed_config_values_are_one_line_exit_2_and_leave_nothing(data, cli, tmp_path):
    """Random wrong types, out-of-range and absurd values for every field of both families'
    configs (one to three at a time). A value the validator accepts must be a valid config;
    every other one is refused by `train` with exit 2, one line, no traceback, and no work
    directory, all before any training starts."""
    family = data.draw(st.sampled_from(sorted(FIELDS)))
    picks = data.draw(st.lists(st.sampled_from(FIELDS[family]), min_size=1, max_size=3))
    values = [data.draw(st.sampled_from(ABSURD)) for _ in picks]
    overrides = [f"--config.{k}={v}" for (k, _), v in zip(picks, values, strict=True)]
    config = f"--config={CONFIGS[family]}"
    CAMPAIGN["cases"] += 1
    code, _, err = cli("config", config, *overrides)
    if code == 0:  # a plausible value (e.g. 0 warm-up steps): nothing to refuse
        CAMPAIGN["accepted"] += 1
        return
    workdir = tmp_path / f"run{CAMPAIGN['cases']}"
    code, _, err = cli("train", config, *overrides, f"--workdir={workdir}")
    assert code == 2, (overrides, err)
    assert err.startswith("error: ") and err.count("\n") == 1, (overrides, err)
    assert "Traceback" not in err
    assert not workdir.exists(), overrides
    CAMPAIGN["refused"] += 1


def test_the_memory_estimate_refuses_what_cannot_fit_and_passes_the_shipped_configs():
    config = default_config()
    for path in sorted(os.listdir(os.path.join(REPO, "configs"))):
        if path.endswith(".py"):  # every shipped config fits a 2-core, 24 GiB machine
            shipped = load_config(os.path.join(REPO, "configs", path))
            resources.check(families.of(shipped).memory_estimate(shipped), limit=4 * 2**30)
    config.eval.beam_size = 100_000  # the 818 GB beam of the campaign
    with pytest.raises(ConfigError, match="final evaluation.*lower eval.beam_size"):
        families.validate(config)
    config = default_config()
    config.num_seeds = 10**9
    with pytest.raises(ConfigError, match="training .* lower num_seeds"):
        families.validate(config)
    with pytest.raises(ConfigError, match="needs about 1.0 GiB .* limit is 512.0 MiB"):
        resources.check([resources.Need("x", 2**30, ("a",))], limit=2**29, where="the limit")


def test_out_of_memory_and_a_full_disk_become_one_line_naming_the_fields():
    assert "lower data.batch_size" in runner.resource_failure(MemoryError())
    xla = RuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 818508800776 bytes.")
    wrapped = ValueError("evaluation failed")
    wrapped.__cause__ = xla
    assert "eval.beam_size" in runner.resource_failure(wrapped)
    full = OSError(errno.ENOSPC, "No space left on device", "/x/checkpoints/20")
    assert "no space left on the device writing /x/checkpoints/20" in (
        runner.resource_failure(full)
    )
    assert runner.resource_failure(ValueError("a bug")) is None


def test_invalid_paths_and_data_that_cannot_load_leave_no_work_directory(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("")
    for workdir, message in ((afile, "is a file"), (afile / "sub", "lies inside the file")):
        with pytest.raises(ConfigError, match=message):
            runner.train_and_evaluate(tiny_config(), str(workdir))
    config = tiny_config()
    config.data.name = "tfds:nonexistent_set_xyz"  # known to be unknown only when loading
    with pytest.raises(ConfigError, match="unknown TFDS dataset"):
        runner.train_and_evaluate(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------
# Damaged files of a finished run
# ------------------------------------------------------------------------------------------


def _short_config():
    config = tiny_config()
    t = config.train
    t.num_steps, t.log_every, t.eval_every, t.ckpt_every, t.max_to_keep = 30, 10, 10, 10, 3
    t.loggers = ""
    return config


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("finished") / "run"
    runner.train_and_evaluate(_short_config(), str(workdir))
    return workdir


def _copy(finished, tmp_path):
    return shutil.copytree(finished, tmp_path / "run")


def test_a_truncated_config_json_is_one_line_for_train_and_predict(finished, tmp_path):
    from attnlab.predict import Predictor

    run = _copy(finished, tmp_path)
    (run / "config.json").write_text((finished / "config.json").read_text()[:50])
    with pytest.raises(DamagedFileError, match="config.json is damaged"):
        runner.train_and_evaluate(_short_config(), str(run))
    with pytest.raises(DamagedFileError, match="config.json is damaged"):
        Predictor(str(run))


def test_a_damaged_provenance_history_is_kept_aside_and_a_new_one_started(finished, tmp_path):
    run = _copy(finished, tmp_path)
    damaged = (finished / "provenance.json").read_text()[:40]
    (run / "provenance.json").write_text(damaged)
    runner.train_and_evaluate(_short_config(), str(run))
    assert (run / "provenance.json.damaged").read_text() == damaged
    history = json.loads((run / "provenance.json").read_text())["invocations"]
    assert len(history) == 1 and history[0]["start_step"] > 0


def test_a_malformed_log_line_names_the_line_and_the_fix(finished, tmp_path):
    run = _copy(finished, tmp_path)
    lines = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    lines[1] = lines[1][:20] + "\n"
    (run / "metrics.jsonl").write_text("".join(lines))
    with pytest.raises(DamagedFileError, match=r"metrics.jsonl:2 is damaged.*delete that line"):
        runner.train_and_evaluate(_short_config(), str(run))
    # done as it says: the run resumes from the newest checkpoint the log covers
    (run / "metrics.jsonl").write_text(lines[0])
    runner.train_and_evaluate(_short_config(), str(run))
    assert (run / "metrics.jsonl").read_bytes() == (finished / "metrics.jsonl").read_bytes()


def test_a_log_cut_behind_the_checkpoint_is_written_again_identically(finished, tmp_path):
    """A power loss after the last checkpoint: the log's last line never reached the disk.
    The re-run notices, resumes from the checkpoint before it, and writes the same line."""
    run = _copy(finished, tmp_path)
    text = (finished / "metrics.jsonl").read_text()
    cut = text[: text.rstrip("\n").rfind("\n") + 1 + 15]  # the last line half written
    (run / "metrics.jsonl").write_text(cut)
    runner.train_and_evaluate(_short_config(), str(run))
    assert (run / "metrics.jsonl").read_text() == text
    assert json.loads((run / "summary.json").read_text()) == json.loads(
        (finished / "summary.json").read_text()
    )
    # with no checkpoint early enough to rebuild it, the run refuses and says so
    (run / "metrics.jsonl").write_text("")
    shutil.rmtree(run / "checkpoints" / "10")
    shutil.rmtree(run / "checkpoints" / "20")
    with pytest.raises(Exception, match="log lines were lost"):
        runner.train_and_evaluate(_short_config(), str(run))


def test_compare_skips_a_run_whose_summary_is_cut_and_says_so(finished, tmp_path, capsys):
    a = shutil.copytree(finished, tmp_path / "runs" / "a")
    b = shutil.copytree(finished, tmp_path / "runs" / "b")
    (b / "summary.json").write_text('{"status": "comp')
    assert [r.path for r in compare.find_runs([str(tmp_path / "runs")])] == [str(a)]
    assert "warning: skipped" in capsys.readouterr().err
    assert len(compare.load_runs(str(tmp_path / "runs"))) == 1


def test_a_cut_sweep_json_is_rebuilt_from_the_trials(tmp_path):
    (tmp_path / sweep.STATUS_FILE).write_text('{"trials": [{"na')
    trial = sweep.Trial(0, "score=dot", {"model.score": "dot"}, status="completed")
    sweep._write_status(str(tmp_path), "c.py", [trial], axes=["model.score"])
    saved = json.loads((tmp_path / sweep.STATUS_FILE).read_text())
    assert [t["status"] for t in saved["trials"]] == ["completed"]
    assert compare.sweep_axes([str(tmp_path)]) == ["model.score"]
    (tmp_path / sweep.STATUS_FILE).write_text("[1, 2")  # compare reads around it
    assert compare.sweep_axes([str(tmp_path)]) is None


def test_an_empty_checkpoint_manifest_is_one_line_without_shutdown_tracebacks(finished, tmp_path):
    run = _copy(finished, tmp_path)
    for root, _, files in os.walk(run / "checkpoints" / "30"):
        if "manifest.ocdbt" in files:
            open(os.path.join(root, "manifest.ocdbt"), "w").close()
    (run / "summary.json").unlink()
    config = _short_config()
    script = (
        "import sys; sys.path.insert(0, 'tests'); from test_hostile import _short_config;"
        "from attnlab import runner; from attnlab.__main__ import _report;"
        "from attnlab.checkpoints import CheckpointError\n"
        f"try: runner.train_and_evaluate(_short_config(), {str(run)!r})\n"
        "except CheckpointError as e: print('error:', e, file=sys.stderr); sys.exit(2)"
    )
    assert config.train.num_steps == 30
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert out.returncode == 2, out.stderr[-2000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Delete" in errors[0] and "tensorstore_spec" not in errors[0]
    assert "Traceback" not in out.stderr and "Event loop is closed" not in out.stderr


# ------------------------------------------------------------------------------------------
# A full disk, a signal during the final evaluation, sweeps sharing a directory
# ------------------------------------------------------------------------------------------


def test_a_failed_checkpoint_save_fails_the_run_in_one_line_and_keeps_the_last(
    tmp_path, monkeypatch
):
    save = Checkpointer.save

    def full_disk_after_the_first(self, step, *args, **kwargs):
        if step > 10:
            raise OSError(errno.ENOSPC, "No space left on device", self.directory)
        return save(self, step, *args, **kwargs)

    monkeypatch.setattr(Checkpointer, "save", full_disk_after_the_first)
    with pytest.raises(runner.ResourceError, match="no space left on the device"):
        runner.train_and_evaluate(_short_config(), str(tmp_path))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["step"] == 10
    assert "no space left" in summary["reason"]
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["10"]


def test_a_real_full_disk_is_one_line_exit_1_and_the_checkpoint_survives(tmp_path):
    """On a 1.5 MB tmpfs (needs the right to mount; skipped otherwise): the run fills it."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1500k", "tmpfs", str(disk)],
                             capture_output=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root and CAP_SYS_ADMIN)")
    try:
        command = [sys.executable, "-m", "attnlab", "train", "--config=configs/reverse.py:quick",
                   f"--workdir={disk / 'run'}", "--config.train.loggers=",
                   "--config.train.num_steps=400", "--config.train.ckpt_every=10",
                   "--config.train.log_every=10", "--config.train.eval_every=200",
                   "--config.train.max_to_keep=400", "--config.train.num_heatmaps=0"]  # fmt: skip
        command += [f"--config.{o}" for o in TINY_MODEL]
        out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
        errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
        assert out.returncode == 1, out.stderr[-3000:]
        assert len(errors) == 1 and "no space left" in errors[0], out.stderr[-3000:]
        assert "Traceback" not in out.stderr
        steps = [s for s in os.listdir(disk / "run" / "checkpoints") if s.isdigit()]
        assert steps  # the checkpoints written before the disk filled are still there
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_a_signal_during_the_final_evaluation_is_an_interrupted_run(tmp_path, monkeypatch):
    evaluate = runner.Run.evaluate

    def evaluate_and_get_a_sigterm(self, final=False):
        if final:
            os.kill(os.getpid(), signal.SIGTERM)
        return evaluate(self, final=final)

    monkeypatch.setattr(runner.Run, "evaluate", evaluate_and_get_a_sigterm)
    with pytest.raises(runner.TrainingInterrupted, match="during the final evaluation"):
        runner.train_and_evaluate(_short_config(), str(tmp_path))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["step"] == 30
    monkeypatch.setattr(runner.Run, "evaluate", evaluate)
    assert runner.train_and_evaluate(_short_config(), str(tmp_path))["status"] == "completed"


def test_a_job_array_job_and_a_whole_sweep_never_share_a_directory(tmp_path):
    with sweep.SweepLock(str(tmp_path)):  # a whole sweep runs
        with pytest.raises(ConfigError, match="another sweep"):
            with sweep.SweepLock(str(tmp_path), shared=True):
                pass
    with sweep.SweepLock(str(tmp_path), shared=True):  # job-array jobs share it
        with sweep.SweepLock(str(tmp_path), shared=True):
            with pytest.raises(ConfigError, match="another sweep"):
                with sweep.SweepLock(str(tmp_path)):
                    pass


def test_a_trial_running_elsewhere_is_left_alone(tmp_path):
    trial = sweep.Trial(0, "score=dot", {"model.score": "dot"})
    trial_dir = tmp_path / trial.name
    trial_dir.mkdir()
    (trial_dir / "train.log").write_text("the other process's log\n")
    with DirectoryLock(str(trial_dir), "run.lock", "training run"):
        result = sweep.run_trial("configs/reverse.py:quick", trial, str(tmp_path))
    assert result.status == "pending" and "running in another process" in result.error
    assert (trial_dir / "train.log").read_text() == "the other process's log\n"


# ------------------------------------------------------------------------------------------
# predict
# ------------------------------------------------------------------------------------------


def test_predict_refuses_bad_flags_and_inputs_before_loading_the_model(cli, finished, tmp_path):
    binary = tmp_path / "binary"
    binary.write_bytes(bytes(range(256)))
    for args, message in (
        ((f"--input={binary}",), "is not UTF-8 text"),
        ((f"--input={tmp_path}",), "is a directory"),
        ((f"--input={tmp_path / 'missing'}",), "cannot be read"),
        (("--max_len=-5",), "--max_len=-5 is invalid"),
        (("--beam_size=0",), "--beam_size=0 is invalid"),
    ):
        code, _, err = cli("predict", f"--workdir={finished}", *args)
        assert code == 2 and message in err and err.count("\n") == 1, (args, err)


def test_predict_cuts_an_overlong_line_and_counts_it(finished):
    from attnlab.predict import Predictor

    predictor = Predictor(str(finished))
    assert predictor.max_source_len == 2 * 15  # twice the longest source of the run
    short, long = predictor.predict(["3 4 5", " ".join(["3"] * 5000)])
    assert short.cut == 0 and long.cut == 5000 - 30 and len(long.source) == 30
    with pytest.raises(ConfigError, match="max_len=100000 is invalid"):
        predictor.predict(["3 4"], max_len=100_000)


def test_read_jsonl_names_a_line_that_is_json_but_not_a_record(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"step": 1}\n5\n')
    with pytest.raises(DamagedFileError, match=":2 is damaged"):
        read_jsonl(tmp_path / "m.jsonl")


def test_zz_campaign_counts():
    """Prints the fuzz campaign's counts (`python -m pytest -n 0 -s tests/test_hostile.py`)."""
    print(f"\nfuzz campaign: {CAMPAIGN}")
    assert CAMPAIGN["cases"] == 0 or CAMPAIGN["refused"] > CAMPAIGN["cases"] // 2
