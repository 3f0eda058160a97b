"""The example notebook runs top to bottom in a Jupyter kernel, and `load_run` reads a run back.

The notebook runs once per module, on a tiny config (a cell injected after its `parameters`
cell), in a temporary work directory; the `load_run` tests read the run it trained.
"""

import importlib.util
import json
import os
import re
import shutil

import jax
import pytest

import attnlab
from attnlab.config_lib import ConfigError
from attnlab.writers import DamagedFileError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(REPO, "examples", "quickstart.ipynb")

# The notebook's config made tiny (20 steps, small data and model): one compile of each program
TINY = """
d, m, t = config.data, config.model, config.train
d.num_train, d.num_valid, d.num_test, d.num_long, d.eval_batch_size = 640, 64, 64, 64, 64
m.encoder.hidden_dim = m.decoder_hidden_dim = m.attention.attn_dim = 16
t.num_steps, t.log_every, t.eval_every, t.ckpt_every, t.num_heatmaps = 20, 10, 10, 20, 1
t.loggers = ""
workdir = {workdir!r}
"""


def _execute():
    spec = importlib.util.spec_from_file_location(
        "execute_notebook", os.path.join(REPO, "scripts", "execute_notebook.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.execute


@pytest.fixture(scope="module")
def notebook(tmp_path_factory):
    """`(executed notebook, its run's work directory)`."""
    workdir = str(tmp_path_factory.mktemp("quickstart") / "run")
    env = dict(
        os.environ,
        # this checkout's attnlab, whatever is installed; the test session's XLA settings
        PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])),
        JAX_DISABLE_MOST_OPTIMIZATIONS=str(
            jax.config.read("jax_disable_most_optimizations")
        ).lower(),
    )
    nb = _execute()(NOTEBOOK, TINY.format(workdir=workdir), env=env, timeout=600)
    return nb, workdir


def _outputs(nb, start: str) -> list:
    """The outputs of the code cell whose source starts with `start`."""
    cells = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith(start)]
    assert len(cells) == 1, start
    return cells[0].outputs


def _text(outputs, name: str) -> str:
    return "".join(o.get("text", "") for o in outputs if o.get("name") == name)


def test_the_notebook_trains_reads_back_plots_and_predicts(notebook):
    nb, workdir = notebook
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    with open(os.path.join(workdir, "summary.json")) as f:
        assert json.load(f)["status"] == "completed"
    # training: the command line's log lines and the bar's last state, not a line per redraw
    log = _text(_outputs(nb, "summary = train_and_evaluate"), "stderr").splitlines()
    assert [line.split(" ", 2)[2].split(":")[0] for line in log[:2]] == ["step 10", "step 20"]
    assert log[2].startswith("train 20/20 [100%]") and len(log) == 3, log
    assert "SavedRun(" in _outputs(nb, "run = load_run")[0].data["text/plain"]
    assert "eval/seq_accuracy" in _outputs(nb, "run.metrics")[0].data["text/html"]
    for start in ("import matplotlib", "predict.draw"):  # the curves and the heat map
        assert any("image/png" in o.get("data", {}) for o in _outputs(nb, start)), start
    lines = _text(_outputs(nb, "predictions ="), "stdout").splitlines()
    assert [line.split(" -> ")[0] for line in lines] == [
        "3 1 4 1 5 9 2 6",
        "2 7 1 8 2 8 1 8 2 8 4 5 9",
    ]


def test_the_committed_notebook_shows_a_full_run_and_no_machine_path():
    """Read on GitHub as it is: every code cell has its outputs (two figures), the file stays
    small, and no output names a path of the machine that ran it."""
    with open(NOTEBOOK) as f:
        text = f.read()
    nb = json.loads(text)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] for c in code[1:])  # the first cell only sets the parameters
    assert sum("image/png" in o.get("data", {}) for c in code for o in c["outputs"]) == 2
    assert "train 600/600 [100%]" in text and len(text) < 150_000
    outputs = json.dumps([c["outputs"] for c in code])
    assert not re.findall(r"/(?:tmp|home|root|Users|var|work)/", outputs)


def test_load_run_reads_the_run_back(notebook):
    nb, workdir = notebook
    run = attnlab.load_run(workdir)
    assert run.family == "seq2seq" and run.status == "completed" and run.seeds == [0]
    assert run.config.train.num_steps == 20 and run.config.data.name == "reverse"
    assert run.summary["step"] == 20 and "test/seq_accuracy" in run.summary
    assert run.timing["wall_seconds"] > 0
    assert list(run.metrics.index) == [10, 20] and run.metrics.index.name == "step"
    assert run.metrics.loc[20, "eval/seq_accuracy"] == run.summary["eval/seq_accuracy"]
    assert [os.path.basename(p) for p in run.pictures] == ["validation_00.png"]
    assert all(os.path.isfile(p) for p in run.pictures)
    with pytest.raises(ConfigError, match="seed_index=1 is invalid: the run has 1 seeds"):
        run.predictor(seed_index=1)


def test_load_run_builds_a_predictor_once_per_seed_and_beam(notebook, monkeypatch):
    """(The notebook's prediction cell runs the real one.)"""
    made = []
    monkeypatch.setattr("attnlab.predict.Predictor", lambda *args: made.append(args) or args)
    run = attnlab.load_run(notebook[1])
    assert run.predictor() is run.predictor() and run.predictor(beam_size=3) == (run.path, 0, 3)
    assert made == [(run.path, 0, None), (run.path, 0, 3)]


def test_load_run_reads_a_run_of_several_seeds(notebook, tmp_path, monkeypatch):
    """Laid out as the runner lays out two seeds (made from the notebook's run: no training):
    the log indexed by (seed, step), each seed's run, and a seed's predictor from the
    checkpoints above it."""
    top = tmp_path / "two"
    for seed in (0, 1):
        shutil.copytree(notebook[1], top / f"seed_{seed}", ignore=shutil.ignore_patterns("ch*"))
        config = json.loads((top / f"seed_{seed}" / "config.json").read_text())
        (top / f"seed_{seed}" / "config.json").write_text(json.dumps(dict(config, seed=seed)))
    (top / "config.json").write_text(json.dumps(dict(config, seed=0, num_seeds=2)))
    (top / "summary.json").write_text(json.dumps({"status": "completed", "step": 20}))
    (top / "checkpoints").mkdir()
    run = attnlab.load_run(str(top))
    assert run.seeds == [0, 1] and [r.seeds for r in run.per_seed] == [[0], [1]]
    assert list(run.metrics.index) == [(0, 10), (0, 20), (1, 10), (1, 20)]
    assert run.metrics.index.names == ["seed", "step"] and len(run.pictures) == 2
    made = []
    monkeypatch.setattr("attnlab.predict.Predictor", lambda *args: made.append(args) or args)
    attnlab.load_run(str(top / "seed_1")).predictor()
    assert made == [(str(top), 1, None)]


def test_load_run_refuses_a_missing_or_damaged_work_directory_in_one_line(notebook, tmp_path):
    _, workdir = notebook

    def refused(path, match, error=ConfigError):
        with pytest.raises(error, match=match) as err:
            attnlab.load_run(str(path))
        assert "\n" not in str(err.value)

    refused(tmp_path / "nowhere", "nowhere not found: there is no run's work directory there")
    refused(tmp_path, "config.json not found: .* is not a run's work directory")
    run = shutil.copytree(workdir, tmp_path / "run", ignore=shutil.ignore_patterns("checkpoints"))
    refused(run / "summary.json", "is a file, not a run's work directory")
    for name, cut in (("metrics.jsonl", 30), ("summary.json", 20), ("config.json", 40)):
        text = (run / name).read_text()
        (run / name).write_text(text[:cut] + "\n")
        refused(run, f"{name}(:1)? is damaged", DamagedFileError)
        (run / name).write_text(text)
    assert attnlab.load_run(str(run)).status == "completed"  # restored: it loads again
