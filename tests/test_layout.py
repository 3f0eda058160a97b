"""The package's structure: imports point one way (the command line, then the runner, then the
families, then models and shared pieces), with no cycle; the shared modules name no family;
a new score needs nothing outside `scores.py`."""

import ast
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnlab import families, models, scores
from attnlab.config import default_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(REPO, "attnlab")

# Layers from the top: a module may import its own layer or any layer below it.
LAYERS = (
    (
        "command line",
        {
            "attnlab.__main__",
            "attnlab.sweep",
            "attnlab.search",
            "attnlab.backends",
            "attnlab.predict",
            "attnlab.saved_run",
        },
    ),
    ("runner", {"attnlab.runner", "attnlab.compare"}),
    ("families", {"attnlab.train", "attnlab.ram.train"}),
)  # everything else: models, data and shared pieces
# Modules every family shares; only the registry (families.py) lists the built-in families.
SHARED = ("__main__", "config_lib", "runner", "writers", "compare", "sweep", "search", "devices")


def _modules() -> dict[str, str]:
    """`{module name: path}` of every module of the package."""
    out = {}
    for root, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                parts = os.path.relpath(path, REPO)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                out[".".join(parts)] = path
    return out


def _imports(module: str, path: str, known) -> set[str]:
    """The package's modules that `module` imports, at module level or inside functions."""
    tree = ast.parse(open(path).read())
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module and name != "attnlab":
                found.add(name)
    return found


def _graph():
    modules = _modules()
    return {m: _imports(m, p, modules) for m, p in modules.items()}


def _layer(module: str) -> int:
    for depth, (_, members) in enumerate(LAYERS):
        if module in members:
            return depth
    return len(LAYERS)


def test_the_imports_have_no_cycle():
    graph = _graph()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert cycles == []


def test_imports_point_from_the_command_line_to_the_runner_to_the_families_to_the_models():
    upward = [
        f"{m} -> {t}" for m, targets in _graph().items() for t in targets if _layer(t) < _layer(m)
    ]
    assert upward == []


def test_the_shared_modules_name_no_family():
    for name in SHARED:
        text = open(os.path.join(PACKAGE, f"{name}.py")).read()
        for family in ("'ram'", '"ram"', "'seq2seq'", '"seq2seq"', "attnlab.ram", "attnlab.train"):
            assert family not in text, (name, family)


def test_help_answers_without_starting_jax():
    code = (
        "import sys; from attnlab.__main__ import main; rc = main(['--help']); "
        "rc2 = main(['train', '--help']); assert 'jax' not in sys.modules, 'jax imported'; "
        "sys.exit(rc + rc2)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "subcommands:" in done.stdout and "--workdir (required)" in done.stdout


class Cosine(scores.Score):
    """A score added at run time: `e_i = q . h_i / (|q| |h_i|)`."""

    same_size = True

    def __call__(self, query, prepared):
        unit = prepared / jnp.linalg.norm(prepared, axis=-1, keepdims=True)
        return unit @ (query / jnp.linalg.norm(query))


def test_a_new_score_needs_only_its_class_in_the_registry(monkeypatch):
    monkeypatch.setitem(scores.SCORES, "cosine", Cosine)
    config = default_config()
    config.model.score, config.model.decoder_hidden_dim = "cosine", 256  # keys: 2 x 128
    families.validate(config)  # validation reads the registry and the score's own constraint
    assert scores.needs_equal_sizes("cosine") and scores.is_content_based("cosine")
    config.model.decoder_hidden_dim = 64
    with pytest.raises(Exception, match="needs query size = key size"):
        families.validate(config)
    config.model.decoder_hidden_dim = config.model.encoder.hidden_dim = 8
    config.model.encoder.bidirectional = False
    model = models.build_model(config, 10, 10)
    params = models.init_params(model, jax.random.key(0))
    src = np.array([[4, 5, 6, 0]], np.int32)
    _, alpha = models.apply_batch(model, params, src, np.array([3], np.int32), src[:, :2])
    alpha = np.asarray(alpha)
    np.testing.assert_allclose(alpha.sum(-1), 1.0, rtol=1e-5)
    assert np.all(alpha[..., 3] == 0.0)  # padding
