"""Searched sweeps (Optuna): the search-space classes and their bad specs, one-line errors on
the command line, and a real search of the toy family (tests/toy_family.py) with continuation
and pruning; then the same search logic through cheap stand-in trial processes."""

import json
import os
import sys
import textwrap

import pytest

from attnlab import search, sweep
from attnlab.config_lib import ConfigError
from attnlab.search import Choice, Float, Int

optuna = pytest.importorskip("optuna")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOY = os.path.join(REPO, "tests", "toy_family.py")

# A sweep file of the toy family (linear regression; the cheapest trial process) with a space.
SEARCH_FILE = f"""
import importlib.util

from attnlab.search import Choice, Float

spec = importlib.util.spec_from_file_location("toy_family", {TOY!r})
toy = importlib.util.module_from_spec(spec)
spec.loader.exec_module(toy)  # registers the family


def get_config(arg=None):
    c = toy.default_config()
    c.train.num_steps, c.train.log_every, c.train.eval_every, c.train.ckpt_every = 40, 10, 10, 40
    return c


def get_search(arg=None):
    return {{
        "optim.learning_rate": Float(0.02, 0.1, log=True),
        "data.batch_size": Choice([16, 32]),
        "data.seed": 0,
    }}


def get_sweep(arg=None):
    return {{"seed": [0, 1]}}
"""


@pytest.fixture
def search_file(tmp_path):
    path = tmp_path / "toy_search.py"
    path.write_text(SEARCH_FILE)
    return str(path)


def test_a_space_holds_ranges_choices_and_fixed_values():
    space, fixed = search.parse_space(
        {
            "optim.learning_rate": Float(1e-4, 1e-2, log=True),
            "model.attention.attn_dim": Int(16, 128, step=16),
            "model.score": Choice(["dot", "general"]),
            "seed": 3,
        }
    )
    assert list(space) == ["optim.learning_rate", "model.attention.attn_dim", "model.score"]
    assert fixed == {"seed": 3}
    assert space["optim.learning_rate"].describe() == {
        "type": "float", "low": 1e-4, "high": 1e-2, "log": True, "step": None,
    }  # fmt: skip
    assert space["model.attention.attn_dim"].describe()["type"] == "int"
    dist = space["model.attention.attn_dim"].distribution()
    assert isinstance(dist, optuna.distributions.IntDistribution) and dist.step == 16
    assert space["model.score"].distribution().choices == ("dot", "general")


@pytest.mark.parametrize(
    "spec, message",
    [
        (Float(1.0, 0.5), "low < high"),
        (Float(0.0, 1.0, log=True), "log=True needs low > 0"),
        (Float(1e-3, 1.0, log=True, step=0.1), "not allowed with log"),
        (Float(0.0, float("inf")), "finite numbers"),
        (Int(1.5, 4), "integers low < high"),
        (Int(0, 64, log=True), "low >= 1"),
        (Int(1, 64, step=0), "step must be an integer >= 1"),
        (Choice([]), "non-empty list"),
        (Choice([[16, 32]]), "numbers, strings, booleans or None"),
        (Choice(["dot", "dot"]), "distinct"),
        ([1e-3, 1e-2], "search it with Choice"),
        (object(), "neither a Float, Int or Choice"),
    ],
)
def test_a_bad_space_spec_names_the_field_and_the_problem(spec, message):
    with pytest.raises(ConfigError, match="'optim.learning_rate': .*" + message):
        search.parse_space({"optim.learning_rate": spec})


def test_a_space_must_search_something():
    with pytest.raises(ConfigError, match="non-empty dict"):
        search.parse_space({})
    with pytest.raises(ConfigError, match="no field is searched"):
        search.parse_space({"seed": 0})


def test_helpers_names_seeds_and_logged_values(tmp_path):
    name = search.search_trial_name(7, {"optim.learning_rate": 0.00123456, "model.score": "dot"})
    assert name == "007-learning_rate=0.00123,score=dot"
    # a re-run draws from another seed than the first run, the same history from the same one
    assert search.sampler_seed(0, 0) != search.sampler_seed(0, 12) == search.sampler_seed(0, 12)
    assert [search.startup_trials(n) for n in (2, 16, 100)] == [1, 5, 10]
    # compare labels sampled floats by 4 significant digits, written ones as written
    from attnlab.compare import _value

    assert (_value(0.006238695217229555), _value(0.003), _value(1e-05)) == (
        "0.006239", "0.003", "1e-05",
    )  # fmt: skip
    run = tmp_path / "run"
    run.mkdir()
    lines = [
        {"step": 10, "train/loss": 1.0},
        {"step": 20, "train/loss": 0.5, "eval/mse": 0.4},
        {"step": 30, "eval/mse": float("nan")},
    ]
    text = "".join(json.dumps(r) + "\n" for r in lines) + '{"step": 40, "eval/m'  # being written
    (run / "metrics.jsonl").write_text(text)
    assert search.metric_by_step(str(run), "eval/mse") == {20: 0.4}
    value, why = search.objective(str(run), "eval/mse")
    assert value is None and "no readable summary.json" in why
    (run / "summary.json").write_text(json.dumps({"status": "completed", "eval/mse": 0.25}))
    assert search.objective(str(run), "eval/mse") == (0.25, "")
    value, why = search.objective(str(run), "eval/loss")
    assert value is None and "no finite eval/loss (it has: eval/mse)" in why


def test_bad_input_is_one_line_and_exit_2(cli, search_file, tmp_path):
    out = str(tmp_path / "s")
    searched = (f"--config={search_file}", f"--workdir={out}", "--sweep.search=tpe")
    grid_only = tmp_path / "grid_only.py"
    grid_only.write_text(SEARCH_FILE.split("def get_search")[0] + "def get_sweep(arg=None):\n"
                         "    return {'seed': [0, 1]}\n")  # fmt: skip
    bad_space = tmp_path / "bad_space.py"
    bad_space.write_text(SEARCH_FILE.replace("Float(0.02, 0.1, log=True)", "Float(0.1, 0.02)"))
    misspelt = tmp_path / "misspelt.py"
    misspelt.write_text(SEARCH_FILE.replace('"optim.learning_rate"', '"optim.learning_rat"'))
    cases = {
        "needs --sweep.num_trials=N": searched,
        "defines no get_search()": (
            f"--config={grid_only}", f"--workdir={out}", "--sweep.search=random",
            "--sweep.num_trials=3",
        ),
        "Float needs finite numbers low < high": (
            f"--config={bad_space}", f"--workdir={out}", "--sweep.search=tpe",
            "--sweep.num_trials=3",
        ),
        "unknown config field 'optim.learning_rat'": (
            f"--config={misspelt}", f"--workdir={out}", "--sweep.search=tpe",
            "--sweep.num_trials=3",
        ),
        "sweep.metric='eval/seq_accuracy' is not a metric of the toy family: eval/mse, test/mse":
            (*searched, "--sweep.num_trials=3", "--sweep.metric=eval/seq_accuracy"),
        "sweep.search='bayes' is unknown": (
            f"--config={search_file}", f"--workdir={out}", "--sweep.search=bayes",
            "--sweep.num_trials=3",
        ),
        "sweep.prune='hyperband' is unknown": (
            *searched, "--sweep.num_trials=3", "--sweep.prune=hyperband",
        ),
        "also set on the command line": (
            *searched, "--sweep.num_trials=3", "--config.optim.learning_rate=0.1",
        ),
        "only apply to a searched sweep": (
            f"--config={search_file}", f"--workdir={out}", "--sweep.num_trials=3",
        ),
        "sweep.index picks one trial of a grid": (
            *searched, "--sweep.num_trials=3", "--sweep.index=0",
        ),
        # a fixed field no sampled value repairs: refused, not N failed trials using up the study
        "invalid in every trial; no trial was started: config.train.eval_every=15": (
            *searched, "--sweep.num_trials=3", "--config.train.eval_every=15",
        ),
    }  # fmt: skip
    for message, args in cases.items():
        code, stdout, stderr = cli("sweep", *args)
        assert code == 2, (message, stdout, stderr)
        assert stderr.startswith("error: ") and message in stderr, (message, stderr)
        assert stderr.count("\n") == 1, stderr
    assert not os.path.exists(out)  # nothing started, nothing written
    code, stdout, _ = cli("sweep", *searched, "--sweep.num_trials=3", "--sweep.dry_run=true")
    assert code == 0 and "search  optim.learning_rate: Float(0.02, 0.1, log=True" in stdout
    assert "fixed   data.seed: 0" in stdout and "minimize eval/mse" in stdout
    assert "no study yet" in stdout and not os.path.exists(out)


@pytest.fixture
def fast_subprocesses(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("JAX_DISABLE_MOST_OPTIMIZATIONS", "true")
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path_factory.mktemp("search_cache")))
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


def _mtimes(directory):
    return {
        p: os.stat(os.path.join(directory, p, "summary.json")).st_mtime_ns
        for p in os.listdir(directory)
        if os.path.exists(os.path.join(directory, p, "summary.json"))
    }


def test_a_real_search_continues_on_a_rerun_and_prunes_a_bad_trial(
    search_file, tmp_path, monkeypatch, fast_subprocesses
):
    out = str(tmp_path / "s")
    options = search.SearchOptions("random", num_trials=2, prune="median", prune_startup=1)
    options.parallel = 2
    trials = search.run_search(search_file, out, options)
    assert [(t.index, t.status) for t in trials] == [(0, "completed"), (1, "completed")]
    names = sorted(t.name for t in trials)
    assert all(n.startswith(f"{i:03d}-learning_rate=") for i, n in enumerate(names))
    study = search.load_study(out)
    assert os.path.exists(os.path.join(out, search.STUDY_FILE))
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    for frozen, trial in zip(study.trials, trials, strict=True):
        # the objective is the run's final eval/mse; the study keeps its curve
        summary = json.load(open(os.path.join(out, trial.name, "summary.json")))
        assert frozen.value == summary["eval/mse"] == trial.value
        assert sorted(frozen.intermediate_values) == [10, 20, 30, 40]
        config = json.load(open(os.path.join(out, trial.name, "config.json")))
        assert config["optim"]["learning_rate"] == frozen.params["optim.learning_rate"]
        assert 0.02 <= frozen.params["optim.learning_rate"] <= 0.1
        assert config["data"]["batch_size"] == frozen.params["data.batch_size"]
    saved = json.load(open(os.path.join(out, sweep.STATUS_FILE)))
    assert saved["axes"] == ["optim.learning_rate", "data.batch_size"]
    assert saved["search"]["metric"] == "eval/mse" and saved["search"]["direction"] == "minimize"
    assert saved["search"]["fixed"] == {"data.seed": 0}
    assert [t["status"] for t in saved["trials"]] == ["completed", "completed"]
    best = min(trials, key=lambda t: t.value)
    assert saved["best"]["name"] == best.name and saved["best"]["value"] == best.value

    # the same command again: N is the study's total, so nothing runs
    before = _mtimes(out)
    again = search.run_search(search_file, out, options)
    assert [t.status for t in again] == ["completed", "completed"] and _mtimes(out) == before

    # one more trial (N = 3), with every new trial made hopeless by a sweep-wide override:
    # after its first eval it is worse than the median of the finished ones, so it is stopped
    monkeypatch.setenv("TOY_STEP_SECONDS", "0.05")  # 2 s of training: time to be pruned
    monkeypatch.setattr(sweep, "WATCH_SECONDS", 0.1)
    more = search.SearchOptions("tpe", num_trials=3, prune="median", prune_startup=1)
    hopeless = {"model.init_scale": 100.0}
    trials = search.run_search(search_file, out, more, common_overrides=hopeless)
    assert [t.status for t in trials] == ["completed", "completed", "pruned"]
    pruned = trials[2]
    summary = json.load(open(os.path.join(out, pruned.name, "summary.json")))
    assert summary["status"] == "interrupted" and summary["step"] < 40  # stopped early
    assert search.load_study(out).trials[2].state.name == "PRUNED"

    # a re-run leaves the pruned trial alone too
    before = _mtimes(out)
    trials = search.run_search(search_file, out, more, common_overrides=hopeless)
    assert [t.status for t in trials] == ["completed", "completed", "pruned"]
    assert _mtimes(out) == before

    # a study is one question: another space in the same directory is refused
    other = tmp_path / "other.py"
    other.write_text(SEARCH_FILE.replace("Choice([16, 32])", "Choice([16, 64])"))
    with pytest.raises(ConfigError, match="made with another space"):
        search.run_search(str(other), out, more)


# A stand-in for `python -m attnlab train`: records its environment and a summary whose
# eval/mse is the learning rate, logging one eval step first; cheap enough to run many.
FAKE_TRIAL = textwrap.dedent(
    """
    import json, os, sys, time
    workdir, lr = sys.argv[1], float(sys.argv[2])
    os.makedirs(workdir, exist_ok=True)
    start = time.time()
    with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
        f.write(json.dumps({"step": 1, "eval/mse": lr}) + "\\n")
    time.sleep(0.05 + 0.1 * (hash(workdir) % 3))
    env = {k: v for k, v in os.environ.items() if k.startswith(("CUDA", "XLA"))}
    with open(os.path.join(workdir, "env.json"), "w") as f:
        json.dump({"env": env, "start": start, "end": time.time()}, f)
    with open(os.path.join(workdir, "summary.json"), "w") as f:
        json.dump({"status": "completed", "eval/mse": lr}, f)
    """
)


def fake_command(config_path, trial, trial_dir, common=None):
    lr = trial.overrides["optim.learning_rate"]
    return [sys.executable, "-c", FAKE_TRIAL, trial_dir, repr(lr)]


def test_search_trials_in_flight_each_get_their_own_gpu(search_file, tmp_path, monkeypatch):
    from attnlab import backends

    monkeypatch.setattr(sweep, "trial_command", fake_command)
    out = str(tmp_path / "s")
    options = search.SearchOptions("tpe", num_trials=6, parallel=2, seed=3)
    backend = backends.LocalBackend(2, devices="0,1")
    trials = search.run_search(search_file, out, options, backend=backend)
    assert [t.status for t in trials] == ["completed"] * 6
    assert [t.value for t in trials] == [t.overrides["optim.learning_rate"] for t in trials]
    runs = [json.load(open(os.path.join(out, t.name, "env.json"))) for t in trials]
    assert {r["env"]["CUDA_VISIBLE_DEVICES"] for r in runs} == {"0", "1"}
    for a in runs:  # the trials running when trial a started had different GPUs
        at_once = [
            b["env"]["CUDA_VISIBLE_DEVICES"] for b in runs if b["start"] <= a["start"] < b["end"]
        ]
        assert len(at_once) == len(set(at_once)) <= 2
    saved = json.load(open(os.path.join(out, sweep.STATUS_FILE)))
    assert saved["best"]["value"] == min(t.value for t in trials)
    assert search.plot(out) == os.path.join(out, search.PLOT_FILE)  # objective by value
    assert os.path.getsize(os.path.join(out, search.PLOT_FILE)) > 0
    # the same seed and history draw the same values (TPE's random start, parallel or not)
    again = search.run_search(search_file, str(tmp_path / "t"), options, backend=backend)
    assert [t.overrides for t in again][:2] == [t.overrides for t in trials][:2]


def test_an_interrupted_trial_resumes_on_the_next_run_and_a_failed_one_counts(
    search_file, tmp_path, monkeypatch
):
    # the first run: trial 0 is stopped by a signal (as when the machine goes down), trial 1
    # fails on its own, trial 2 completes
    def first_run(config_path, trial, trial_dir, common=None):
        if trial.index == 2:
            return fake_command(config_path, trial, trial_dir, common)
        status, code = ("interrupted", 143) if trial.index == 0 else ("failed", 1)
        script = (
            "import json, os, sys; os.makedirs(sys.argv[1], exist_ok=True); "
            f"json.dump({{'status': {status!r}}}, open(os.path.join(sys.argv[1], "
            f"'summary.json'), 'w')); sys.exit({code})"
        )
        return [sys.executable, "-c", script, trial_dir]

    monkeypatch.setattr(sweep, "trial_command", first_run)
    out = str(tmp_path / "s")
    options = search.SearchOptions("random", num_trials=3)
    trials = search.run_search(search_file, out, options)
    assert [t.status for t in trials] == ["interrupted", "failed", "completed"]
    assert "exit code 1" in trials[1].error
    study = search.load_study(out)
    assert [t.state.name for t in study.trials] == ["RUNNING", "FAIL", "COMPLETE"]
    # the next run resumes trial 0 in its own directory; the failed one counts towards N
    monkeypatch.setattr(sweep, "trial_command", fake_command)
    again = search.run_search(search_file, out, options)
    assert [(t.index, t.name, t.status) for t in again] == [
        (0, trials[0].name, "completed"),
        (1, trials[1].name, "failed"),
        (2, trials[2].name, "completed"),
    ]
    assert again[0].value == again[0].overrides["optim.learning_rate"]
    assert sorted(os.listdir(out)) == sorted(
        [t.name for t in trials] + [search.STUDY_FILE, sweep.STATUS_FILE, sweep.LOCK_FILE]
    )
