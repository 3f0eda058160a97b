"""Test settings: fast compiles, a shared persistent compilation cache, tiny configs."""

import os

# Two test processes run side by side (pytest-xdist): on a GPU neither may grab most of its
# memory up front, as JAX does by default.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402
import pytest  # noqa: E402

# Tests are bounded by the number of compiles, not by arithmetic: cheaper XLA optimisation
# roughly halves the suite, and the cache lets identical programs built by different tests
# (each train_and_evaluate makes its own jit) compile once.
jax.config.update("jax_disable_most_optimizations", True)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@pytest.fixture(scope="session", autouse=True)
def _compilation_cache(tmp_path_factory):
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("jax_cache")))
    yield


@pytest.fixture
def optimized_xla():
    """For a test that trains for hundreds of steps (a convergence check): its time goes to
    the steps, not the compiles, so fully optimised programs are faster."""
    jax.config.update("jax_disable_most_optimizations", False)
    yield
    jax.config.update("jax_disable_most_optimizations", True)


@pytest.fixture
def cli(capsys):
    """Runs `python -m attnlab ARGS` in this process: `(exit code, stdout, stderr)`."""
    from attnlab.__main__ import main

    def run(*args):
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run
