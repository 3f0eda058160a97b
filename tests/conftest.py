"""Test settings: fast compiles, a shared persistent compilation cache, tiny configs."""

import jax
import pytest

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
