"""Sweep expansion, trial names, and a real sweep with a deliberately failing trial."""

import json
import os
import sys
import textwrap

import pytest

import attnlab
from attnlab import compare, sweep
from attnlab.config_lib import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_expand_axes_is_the_product_in_order():
    trials = sweep.expand({"model.score": ["dot", "general"], "seed": [0, 1, 2]})
    assert len(trials) == 6
    assert trials[0] == {"model.score": "dot", "seed": 0}
    assert trials[-1] == {"model.score": "general", "seed": 2}


def test_expand_list_and_errors():
    assert sweep.expand([{"seed": 3}, {"seed": 4}]) == [{"seed": 3}, {"seed": 4}]
    with pytest.raises(ConfigError, match="non-empty list"):
        sweep.expand({"seed": []})
    with pytest.raises(ConfigError, match="dict of axes"):
        sweep.expand("seed")


def test_trial_names_are_file_system_safe_and_stable():
    assert sweep.trial_name({"model.score": "dot", "seed": 1}) == "score=dot,seed=1"
    # Ambiguous last components keep the full keys.
    name = sweep.trial_name({"model.encoder.cell": "gru", "model.decoder_cell": "lstm"})
    assert name == "cell=gru,decoder_cell=lstm"
    name = sweep.trial_name({"model.encoder.cell": "gru", "model.x.cell": "lstm"})
    assert name == "model.encoder.cell=gru,model.x.cell=lstm"
    for hostile in ("../../etc", "a/b", "..", "x\\y"):
        name = sweep.trial_name({"data.name": hostile})
        assert "/" not in name and "\\" not in name and name not in ("", ".", "..")
    long = {"model.score": "x" * 300}
    assert len(sweep.trial_name(long)) <= 120
    assert sweep.trial_name(long) == sweep.trial_name(dict(long))  # no per-process salt


def test_scores_sweep_config_has_valid_trials():
    trials = sweep.load_sweep(os.path.join(REPO, "configs", "sweeps", "scores.py"))
    assert len(trials) == 80 and len({t.name for t in trials}) == 80
    from attnlab.config import validate
    from attnlab.config_lib import apply_overrides, load_config

    base = os.path.join(REPO, "configs", "sweeps", "scores.py")
    for t in trials[::7]:
        validate(apply_overrides(load_config(base), t.overrides))


SWEEP_FILE = """
from attnlab.config import default_config, quick


def get_config(arg=None):
    c = quick(default_config())
    c.data.num_train, c.data.num_valid, c.data.num_test, c.data.num_long = 256, 32, 32, 32
    c.data.eval_batch_size = 32
    c.model.embed_dim = 8
    c.model.encoder.hidden_dim = c.model.decoder_hidden_dim = c.model.attention.attn_dim = 8
    c.train.num_steps, c.train.log_every, c.train.eval_every, c.train.ckpt_every = 4, 2, 4, 4
    c.train.num_heatmaps = 1
    return c


def get_sweep(arg=None):
    return [
        {"model.score": "general", "seed": 0},
        {"data.name": "tfds:no_such_set", "seed": 0},  # valid config, fails when loading data
        {"model.score": "general", "seed": 1},
    ]
"""


@pytest.fixture
def fast_subprocesses(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("JAX_DISABLE_MOST_OPTIMIZATIONS", "true")
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path_factory.mktemp("sweep_cache")))
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


def test_sweep_records_a_failure_goes_on_and_skips_finished_trials(tmp_path, fast_subprocesses):
    config = tmp_path / "tiny_sweep.py"
    config.write_text(textwrap.dedent(SWEEP_FILE))
    out = tmp_path / "sweep"
    trials = sweep.run_sweep(str(config), str(out), parallel=2)
    status = {t.name: t.status for t in trials}
    assert status == {
        "score=general,seed=0": "completed",
        "name=tfds-no_such_set,seed=0": "failed",
        "score=general,seed=1": "completed",
    }
    failed = next(t for t in trials if t.status == "failed")
    assert "exit code 2" in failed.error and "no_such_set" in failed.error
    saved = json.load(open(out / sweep.STATUS_FILE))
    assert [t["status"] for t in saved["trials"]] == ["completed", "failed", "completed"]
    done = out / "score=general,seed=0" / "summary.json"
    before = os.stat(done).st_mtime_ns
    rerun = sweep.run_sweep(str(config), str(out), parallel=1)
    assert os.stat(done).st_mtime_ns == before  # finished trials are not redone
    assert [t.status for t in rerun] == ["completed", "failed", "completed"]
    assert rerun[0].seconds == 0.0 and rerun[1].seconds > 0.0  # only the failed one ran again
    # compare reads the real work directories: two seeds of one variant, the failure left out.
    table = compare.compare([str(out)])
    assert "| 2 |" in table
    # the same runs from Python: one row per run, and the mean ± CI table
    df = attnlab.load_runs(str(out))
    assert len(df) == 2 and set(df["status"]) == {"completed"} and sorted(df["seed"]) == [0, 1]
    assert {"model.score", "eval/seq_accuracy", "num_params", "train/tokens_per_sec"} <= set(df)
    table = compare.summarize(df, "eval/seq_accuracy", by=["model.score"])
    assert list(table["model.score"]) == ["general"] and table["n"][0] == 2
    mean, half = compare.mean_ci(df["eval/seq_accuracy"])
    assert table["mean"][0] == pytest.approx(mean) and table["ci95"][0] == pytest.approx(half)
    assert table["verdict"][0] == "best"
    for name in ("accuracy_by_length.png", "attention_grid.png", "curves_train_loss.png"):
        assert (out / "report" / name).stat().st_size > 0


def test_a_sweep_with_an_invalid_trial_config_starts_no_trial(tmp_path):
    config = tmp_path / "bad_sweep.py"
    bad = SWEEP_FILE.replace(
        '{"data.name": "tfds:no_such_set", "seed": 0}', '{"model.scor": "dot"}'
    )
    bad = bad.replace('{"model.score": "general", "seed": 1}', '{"model.score": "dot"}')
    config.write_text(textwrap.dedent(bad))
    with pytest.raises(ConfigError) as err:
        sweep.run_sweep(str(config), str(tmp_path / "sweep"))
    text = str(err.value)
    assert "2 of 3 trials have an invalid config; no trial was started" in text
    assert "trial 1 (scor=dot): unknown config field 'model.scor'" in text
    assert "trial 2 (score=dot)" in text and "decoder_hidden_dim=8" in text  # 8 vs keys of 16
    assert not (tmp_path / "sweep").exists()


def test_sweep_index_runs_one_trial_with_the_common_overrides(tmp_path, fast_subprocesses):
    config = tmp_path / "tiny_sweep.py"
    config.write_text(textwrap.dedent(SWEEP_FILE))
    trials = sweep.run_sweep(
        str(config), str(tmp_path / "s"), index=2, common_overrides={"train.num_steps": 2}
    )
    assert [t.name for t in trials] == ["score=general,seed=1"]
    assert trials[0].status == "completed"
    assert sorted(os.listdir(tmp_path / "s")) == [
        "score=general,seed=1",
        sweep.STATUS_FILE,
        sweep.LOCK_FILE,  # held shared by the jobs of a job array
    ]
    resolved = json.load(open(tmp_path / "s" / trials[0].name / "config.json"))
    assert resolved["train"]["num_steps"] == 2  # a sweep-wide override reaches the trial
    with pytest.raises(ConfigError, match="has 3 trials"):
        sweep.run_sweep(str(config), str(tmp_path / "s"), index=3)


def test_unknown_backend_lists_the_valid_ones():
    from attnlab import backends

    with pytest.raises(ConfigError, match="valid backends: local, ray"):
        backends.make_backend("slurm")
    with pytest.raises(ConfigError, match="parallel=0"):
        backends.make_backend("local", parallel=0)


TWO_TRIALS = SWEEP_FILE.split("def get_sweep")[0] + textwrap.dedent(
    """
    def get_sweep(arg=None):
        return {"seed": [0, 1]}
    """
)


def test_cli_sweep_runs_trials_and_reports_progress(tmp_path, fast_subprocesses):
    import subprocess
    import sys

    config = tmp_path / "two_trials.py"
    config.write_text(textwrap.dedent(TWO_TRIALS))
    command = [sys.executable, "-m", "attnlab", "sweep", f"--config={config}"]
    command += [f"--workdir={tmp_path / 's'}", "--sweep.parallel=2", "--config.train.num_steps=2"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "2 of 2 trials completed" in out.stdout
    saved = json.load(open(tmp_path / "s" / sweep.STATUS_FILE))
    assert [t["status"] for t in saved["trials"]] == ["completed", "completed"]
    assert json.load(open(tmp_path / "s" / "seed=1" / "config.json"))["train"]["num_steps"] == 2


@pytest.mark.slow  # Ray runs trials in its own (niced) workers: ~30 s idle, minutes when busy
def test_ray_backend_runs_a_two_trial_sweep_on_a_local_instance(tmp_path, fast_subprocesses):
    ray = pytest.importorskip("ray")
    from attnlab import backends

    config = tmp_path / "two_trials.py"
    config.write_text(textwrap.dedent(TWO_TRIALS))
    backend = backends.RayBackend(num_cpus=2)
    try:
        done = []
        trials = sweep.run_sweep(
            str(config), str(tmp_path / "s"), backend=backend, on_done=lambda t, _: done.append(t)
        )
    finally:
        backend.shutdown()
    assert not ray.is_initialized()
    assert [(t.name, t.status) for t in trials] == [
        ("seed=0", "completed"),
        ("seed=1", "completed"),
    ]
    assert sorted(t.name for t in done) == ["seed=0", "seed=1"]
    saved = json.load(open(tmp_path / "s" / sweep.STATUS_FILE))
    assert [t["status"] for t in saved["trials"]] == ["completed", "completed"]
    for t in trials:  # each trial trained with its own seed in its own directory
        resolved = json.load(open(tmp_path / "s" / t.name / "config.json"))
        assert resolved["seed"] == int(t.name[-1])
        assert json.load(open(tmp_path / "s" / t.name / "summary.json"))["status"] == "completed"


def test_a_second_sweep_into_the_same_directory_is_refused(tmp_path):
    import subprocess
    import sys
    import time

    config = tmp_path / "tiny_sweep.py"
    config.write_text(textwrap.dedent(TWO_TRIALS))
    with sweep.SweepLock(str(tmp_path)):
        with pytest.raises(ConfigError, match=f"another sweep \\(pid {os.getpid()}"):
            sweep.run_sweep(str(config), str(tmp_path))
    # A holder that is killed releases the lock (the OS drops it with the process).
    script = (
        "import time; from attnlab.sweep import SweepLock; "
        f"lock = SweepLock({str(tmp_path)!r}); lock.__enter__(); "
        "print('locked', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(ConfigError, match="another sweep"):
        sweep.SweepLock(str(tmp_path)).__enter__()
    holder.kill()
    holder.wait()
    time.sleep(0.1)
    with sweep.SweepLock(str(tmp_path)):
        pass


def test_device_slots_never_put_two_trials_on_one_gpu_unless_they_must():
    from attnlab import backends

    pool = backends.DevicePool(["0", "1", "2", "3"], parallel=2, environ={})
    assert pool.slots == [("0", "1"), ("2", "3")] and pool.sharing == 1  # an even share: 2 each
    a, env_a = pool.acquire()
    b, env_b = pool.acquire()
    assert {env_a["CUDA_VISIBLE_DEVICES"], env_b["CUDA_VISIBLE_DEVICES"]} == {"0,1", "2,3"}
    assert "XLA_PYTHON_CLIENT_MEM_FRACTION" not in env_a  # alone on its GPUs: JAX's default
    pool.release(a)
    assert pool.acquire()[1]["CUDA_VISIBLE_DEVICES"] == env_a["CUDA_VISIBLE_DEVICES"]
    # more trials than GPUs: evenly shared, each with its share of the memory
    pool = backends.DevicePool(["0", "1"], parallel=4, environ={})
    envs = [pool.acquire()[1] for _ in range(4)]
    assert sorted(e["CUDA_VISIBLE_DEVICES"] for e in envs) == ["0", "0", "1", "1"]
    assert {e["XLA_PYTHON_CLIENT_MEM_FRACTION"] for e in envs} == {"0.45"}
    # the sweep's own memory settings are kept
    pool = backends.DevicePool(["0"], parallel=2, environ={"XLA_PYTHON_CLIENT_PREALLOCATE": "0"})
    assert "XLA_PYTHON_CLIENT_MEM_FRACTION" not in pool.acquire()[1]
    assert backends.memory_fraction(3) == "0.30"
    assert backends.DevicePool(["0", "1", "2"], parallel=1, per_trial=2).slots == [("0", "1")]
    with pytest.raises(ConfigError, match="devices_per_trial=3 is invalid: only 2 devices"):
        backends.DevicePool(["0", "1"], parallel=1, per_trial=3)


def test_the_gpus_are_found_without_jax(tmp_path, monkeypatch):
    from attnlab import backends

    assert backends.visible_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]
    assert backends.visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert backends.visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == []
    assert backends.visible_gpus({}, smi="no-such-nvidia-smi") == []  # no driver: no GPUs
    smi = tmp_path / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\necho 'GPU 0: NVIDIA A100 (UUID: GPU-a)'\necho 'GPU 1: NVIDIA A100 (UUID: "
        "GPU-b)'\n"
    )
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert backends.visible_gpus({}) == ["0", "1"]
    assert backends.parse_devices("0, 1,2") == ["0", "1", "2"]
    assert backends.parse_devices("none") == [] and backends.parse_devices("") is None
    with pytest.raises(ConfigError, match="distinct devices"):
        backends.parse_devices("0,0")
    with pytest.raises(ConfigError, match="sweep.gpus_per_trial"):
        backends.make_backend("ray", devices="0,1")


# A stand-in for `python -m attnlab train` that records the environment it was given, when it
# ran, and a completed summary; trials take different times.
ENV_TRIAL = """
import json, os, sys, time
workdir, seconds = sys.argv[1], float(sys.argv[2])
os.makedirs(workdir, exist_ok=True)
start = time.time()
time.sleep(seconds)
env = {k: v for k, v in os.environ.items() if k.startswith(("CUDA_VISIBLE", "XLA_PYTHON"))}
with open(os.path.join(workdir, "env.json"), "w") as f:
    json.dump({"env": env, "start": start, "end": time.time()}, f)
with open(os.path.join(workdir, "summary.json"), "w") as f:
    json.dump({"status": "completed"}, f)
"""

ENV_SWEEP = SWEEP_FILE.split("def get_sweep")[0] + textwrap.dedent(
    """
    def get_sweep(arg=None):
        return {"seed": [0, 1, 2, 3, 4, 5]}
    """
)


@pytest.mark.parametrize(
    "devices, parallel, per_trial, slots, fraction",
    [
        ("0,1,2", 3, 0, {"0", "1", "2"}, None),  # a GPU per trial, whatever their durations
        ("0,1,2,3", 2, 2, {"0,1", "2,3"}, None),  # two GPUs per trial
        ("0,1", 4, 0, {"0", "1"}, "0.45"),  # two trials per GPU: each gets half its memory
    ],
)
def test_each_trial_process_gets_its_own_devices(
    tmp_path, monkeypatch, devices, parallel, per_trial, slots, fraction
):
    from attnlab import backends

    def command(config_path, trial, trial_dir, common=None):
        seconds = (0.3, 0.05, 0.15)[trial.index % 3]
        return [sys.executable, "-c", ENV_TRIAL, trial_dir, str(seconds)]

    monkeypatch.setattr(sweep, "trial_command", command)
    monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE", raising=False)  # set by conftest
    monkeypatch.delenv("XLA_PYTHON_CLIENT_MEM_FRACTION", raising=False)
    config = tmp_path / "env_sweep.py"
    config.write_text(ENV_SWEEP)
    backend = backends.LocalBackend(parallel, devices=devices, devices_per_trial=per_trial)
    trials = sweep.run_sweep(str(config), str(tmp_path / "s"), backend=backend)
    assert [t.status for t in trials] == ["completed"] * 6
    runs = [json.load(open(tmp_path / "s" / t.name / "env.json")) for t in trials]
    assert {r["env"]["CUDA_VISIBLE_DEVICES"] for r in runs} == slots
    assert {r["env"].get("XLA_PYTHON_CLIENT_MEM_FRACTION") for r in runs} == {fraction}
    share = 2 if fraction else 1  # the most trials a device may hold at once
    for a in runs:  # the trials running when trial a started, a included
        at_once = [b for b in runs if b["start"] <= a["start"] < b["end"]]
        assert len(at_once) <= parallel
        for device in a["env"]["CUDA_VISIBLE_DEVICES"].split(","):
            holders = [b for b in at_once if device in b["env"]["CUDA_VISIBLE_DEVICES"].split(",")]
            assert len(holders) <= share, (device, holders)
