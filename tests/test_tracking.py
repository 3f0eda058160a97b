"""Experiment trackers (`train.loggers=wandb,mlflow`), read back through the trackers' own
formats: W&B's offline transaction logs (`run-<id>.wandb`, as W&B's protobuf records) and
MLflow's client on a local SQLite store. One toy run feeds both, then resumes as after a kill:
from an earlier checkpoint than the steps it had sent, with W&B's log cut short (W&B writes it
out in blocks: a killed process loses the rest). The tracked runs must be the same ones, with
every step once."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attnlab import families, runner, trackers, writers
from attnlab.config_lib import ConfigError, load_config, upgrade_saved

REPO = Path(__file__).resolve().parent.parent
TOY = str(REPO / "tests" / "toy_family.py")
STEPS = [10, 20, 30, 40, 50, 60]  # the toy run's log steps (evaluated at 20, 40, 60)


def tracker_env(tmp: Path) -> dict:
    """No network, nothing outside `tmp`: W&B offline and quiet, MLflow on a SQLite file."""
    return {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_CONSOLE": "off",
        "WANDB__DISABLE_STATS": "true",  # no system-metrics sampler process
        "WANDB_CACHE_DIR": str(tmp / "wandb_cache"),
        "WANDB_CONFIG_DIR": str(tmp / "wandb_config"),
        "WANDB_DATA_DIR": str(tmp / "wandb_data"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }


NAMING_ENV = ("WANDB_PROJECT", "WANDB_NAME", "WANDB_DIR", "WANDB_RUN_GROUP")
NAMING_ENV += ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID")


def toy_config(loggers: str):
    config = load_config(TOY)
    config.train.loggers = loggers
    config.train.num_heatmaps = 8  # the toy family's one picture, fit/validation.png
    return config


def cut_after_step(log: Path, step: int) -> None:
    """Cuts a W&B log (one block: chunks one after the other) after the history record of
    `step`, as a process killed before W&B wrote out the rest leaves it."""
    data, pos = log.read_bytes(), 7
    while True:
        length = int.from_bytes(data[pos + 4 : pos + 6], "little")
        end = pos + 7 + length
        (record,) = trackers.wandb_records(data[:7] + data[pos:end])
        if record.WhichOneof("record_type") == "history":
            if _items(record.history.item).get("_step") == step:
                log.write_bytes(data[:end])
                return
        pos = end


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """A toy run logged to W&B (offline) and MLflow; then, as after a kill, W&B's log cut after
    step 30 and the step-60 checkpoint removed; then resumed (from step 40):
    `(workdir, tracking.json before the resume, summary, tmp)`."""
    pytest.importorskip("wandb")
    pytest.importorskip("mlflow")
    tmp = tmp_path_factory.mktemp("tracking")
    workdir = tmp / "run"
    with pytest.MonkeyPatch.context() as env:
        for name, value in tracker_env(tmp).items():
            env.setenv(name, value)
        for name in NAMING_ENV:
            env.delenv(name, raising=False)
        config = toy_config("wandb,mlflow")
        runner.train_and_evaluate(config, str(workdir))
        first = json.loads((workdir / "tracking.json").read_text())
        (log,) = workdir.glob("wandb/offline-run-*/run-*.wandb")
        cut_after_step(log, 30)
        shutil.rmtree(workdir / "checkpoints" / "60")
        summary = runner.train_and_evaluate(config, str(workdir))
        import wandb

        wandb.teardown()  # stops W&B's service process
    return workdir, first, summary, tmp


def _items(items) -> dict:
    """W&B's `{key or nested_key, value_json}` items as a (nested) dict."""
    out: dict = {}
    for item in items:
        *parents, name = [item.key] if item.key else list(item.nested_key)
        target = out
        for parent in parents:
            target = target.setdefault(parent, {})
        target[name] = json.loads(item.value_json)
    return out


def read_wandb(workdir: Path) -> dict:
    """Every offline W&B run of `workdir` (one per process that ran), oldest first."""
    runs = []
    for run_dir in sorted((workdir / "wandb").glob("offline-run-*")):
        (log,) = run_dir.glob("run-*.wandb")
        rows, config, summary, run_ids = [], {}, {}, set()
        for record in trackers.wandb_records(log.read_bytes()):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run_ids.add(record.run.run_id)
                config.update(_items(record.run.config.update))
            elif kind == "config":
                config.update(_items(record.config.update))
            elif kind == "history":
                rows.append(_items(record.history.item))
            elif kind == "summary":
                summary.update(_items(record.summary.update))
        runs.append(dict(dir=run_dir, run_ids=run_ids, rows=rows, config=config, summary=summary))
    return runs


def test_wandb_gets_scalars_config_summary_and_pictures_once_across_a_resume(tracked):
    workdir, first, summary, _ = tracked
    run_id = first["wandb"]["run_id"]
    assert json.loads((workdir / "tracking.json").read_text())["wandb"]["run_id"] == run_id
    runs = read_wandb(workdir)
    assert len(runs) == 2 and all(r["run_ids"] == {run_id} for r in runs)  # the same W&B run
    rows = [row for r in runs for row in r["rows"]]
    logged = [row for row in rows if "train/loss" in row]
    # the first process's log kept steps 10-30; the resumed one sent step 40 from metrics.jsonl
    # (its checkpoint's step), then 50 and 60: each step once
    assert [[row["_step"] for row in r["rows"] if "train/loss" in row] for r in runs] == [
        [10, 20, 30],
        [40, 50, 60],
    ]
    for row, line in zip(logged, writers.read_jsonl(workdir / "metrics.jsonl"), strict=True):
        values = {k: v for k, v in line.items() if k != "step"}
        assert {k: row[k] for k in values} == pytest.approx(values)
        assert row["train/examples_per_sec"] > 0  # the speed of timing.jsonl too
    (picture,) = [row for row in runs[1]["rows"] if "fit/validation" in row]  # the lost one
    assert picture["_step"] == 60 and picture["fit/validation"]["_type"] == "image-file"
    assert (runs[1]["dir"] / "files" / picture["fit/validation"]["path"]).is_file()
    config = runs[0]["config"]
    assert config["model.init_scale"] == 0.1 and config["train.loggers"] == "wandb,mlflow"
    assert config["seed"] == 0 and config["family"] == "toy"
    final = runs[-1]["summary"]
    assert final["test/mse"] == pytest.approx(summary["test/mse"])
    assert final["status"] == "completed" and final["fit_plot"] == "fit/validation.png"


def test_mlflow_gets_scalars_params_summary_and_pictures_once_across_a_resume(tracked):
    from mlflow.tracking import MlflowClient

    workdir, first, summary, tmp = tracked
    entry = json.loads((workdir / "tracking.json").read_text())["mlflow"]
    assert entry["run_id"] == first["mlflow"]["run_id"]  # the resume continued the same run
    client = MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
    run = client.get_run(entry["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == os.path.normpath(workdir)
    (experiment,) = [e for e in client.search_experiments() if e.name == "attnlab"]
    assert len(client.search_runs([experiment.experiment_id])) == 1
    assert experiment.artifact_location == (tmp / "mlruns" / "attnlab").as_uri()  # by the store
    lines = writers.read_jsonl(workdir / "metrics.jsonl")
    for name in ("train/loss", "eval/mse", "train/learning_rate"):
        history = sorted(client.get_metric_history(run.info.run_id, name), key=lambda m: m.step)
        expected = [(line["step"], line[name]) for line in lines if name in line]
        assert [(m.step, m.value) for m in history] == pytest.approx(expected), name
    assert len(client.get_metric_history(run.info.run_id, "train/examples_per_sec")) == 6
    params = run.data.params
    assert params["model.init_scale"] == "0.1" and params["family"] == "toy"
    assert params["seed"] == "0" and params["train.loggers"] == "wandb,mlflow"
    final = client.get_metric_history(run.info.run_id, "summary/test/mse")
    assert [(m.step, m.value) for m in final] == [(60, pytest.approx(summary["test/mse"]))]
    names = [a.path for a in client.list_artifacts(run.info.run_id)]
    assert "summary.json" in names and "fit" in names
    assert [a.path for a in client.list_artifacts(run.info.run_id, "fit")] == ["fit/validation.png"]
    saved = client.download_artifacts(run.info.run_id, "summary.json", str(tmp / "download"))
    stored = json.loads(Path(saved).read_text())
    assert stored == json.loads((workdir / "summary.json").read_text())


@pytest.mark.parametrize("tracker", ["wandb", "mlflow"])
def test_a_missing_tracker_is_one_line_naming_the_install_command(
    tracker, monkeypatch, tmp_path, cli
):
    monkeypatch.setitem(sys.modules, tracker, None)  # as if the package were not installed
    with pytest.raises(ConfigError) as err:
        runner.train_and_evaluate(toy_config(f"tensorboard,{tracker}"), str(tmp_path / "run"))
    message = str(err.value)
    assert f'pip install "attnlab[{tracker}]"' in message and "\n" not in message
    assert f'pip install -e ".[{tracker}]"' in message
    assert not (tmp_path / "run").exists()  # refused before any work
    code, _, err = cli("train", f"--config={TOY}", f"--workdir={tmp_path / 'cli'}",
                       f"--config.train.loggers={tracker}")  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and f"attnlab[{tracker}]" in err


def test_loggers_are_checked_and_the_old_tensorboard_field_still_reads(cli):
    config = load_config(TOY)
    config.train.loggers = "tensorboard, wandb,mlflow"
    families.validate(config)
    config.train.loggers = "tensorboard,comet"
    with pytest.raises(ConfigError, match="must be comma-separated names of tensorboard, wandb"):
        families.validate(config)
    with pytest.raises(ConfigError, match="unknown logger comet: the loggers are tensorboard"):
        trackers.create_writer("unused", ["comet"])
    config.train.loggers = "tensorboard"
    config.train.tensorboard = False  # from Python, where a loaded config takes any new name
    with pytest.raises(ConfigError, match="config.train.tensorboard is now config.train.loggers"):
        families.validate(config)
    assert upgrade_saved({"train.tensorboard": False}) == {"train.loggers": ""}
    assert upgrade_saved({"train.tensorboard": True}) == {"train.loggers": "tensorboard"}
    code, _, err = cli("config", f"--config={TOY}", "--config.train.tensorboard=false")
    assert code == 2 and "config.train.tensorboard is now config.train.loggers" in err


@pytest.mark.slow
def test_a_run_killed_mid_way_continues_its_tracked_runs(tmp_path):
    """A real SIGKILL (the toy run in its own process, slowed down), then the same command:
    one W&B run and one MLflow run, every step once."""
    pytest.importorskip("wandb")
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    workdir = tmp_path / "run"
    env = dict(os.environ, **tracker_env(tmp_path), TOY_STEP_SECONDS="0.05")
    env["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "true"
    for name in NAMING_ENV:
        env.pop(name, None)
    command = [sys.executable, "-m", "attnlab", "train", f"--config={TOY}",
               f"--workdir={workdir}", "--config.train.loggers=wandb,mlflow",
               "--config.train.num_heatmaps=8"]  # fmt: skip
    proc = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE)
    log, deadline = workdir / "metrics.jsonl", time.time() + 120
    while proc.poll() is None and time.time() < deadline:
        if log.exists() and log.read_text().count("\n") >= 3:  # steps 10-30: past checkpoint 20
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    first = json.loads((workdir / "tracking.json").read_text())
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    entry = json.loads((workdir / "tracking.json").read_text())
    assert entry["wandb"]["run_id"] == first["wandb"]["run_id"]
    assert entry["mlflow"]["run_id"] == first["mlflow"]["run_id"]
    runs = read_wandb(workdir)  # the killed process's log may hold nothing but its header
    assert len(runs) == 2 and set().union(*(r["run_ids"] for r in runs)) == {
        entry["wandb"]["run_id"]
    }
    steps = [row["_step"] for r in runs for row in r["rows"] if "train/loss" in row]
    assert steps == STEPS
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    history = client.get_metric_history(entry["mlflow"]["run_id"], "train/loss")
    assert sorted(m.step for m in history) == STEPS
    assert client.get_run(entry["mlflow"]["run_id"]).info.status == "FINISHED"


def test_the_pictures_a_family_names_are_what_the_trackers_get():
    fields = {"glimpse_paths": ["glimpses/paths.png", "glimpses/validation_00.png"]}
    fields |= {"fit_plot": "fit/validation.png", "decoding": "greedy", "examples": 3}
    assert writers.pictures("runs/x", fields) == {
        "glimpses/paths": os.path.join("runs/x", "glimpses/paths.png"),
        "glimpses/validation_00": os.path.join("runs/x", "glimpses/validation_00.png"),
        "fit/validation": os.path.join("runs/x", "fit/validation.png"),
    }
