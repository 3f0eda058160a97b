"""Tests for attnlab.checkpoints: exact round trip of a flax + optax state, retention, errors."""

import glob
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import struct

from attnlab.checkpoints import Checkpointer, CheckpointError


@struct.dataclass
class TrainState:
    step: jax.Array
    params: dict
    opt_state: optax.OptState
    rng: jax.Array


_TX = optax.adam(1e-2)
_MODEL = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(3)])


# Both are jitted: eager flax/optax would compile every op separately, which is much slower.
@jax.jit
def _init_state(key):
    init_key, rng_key = jax.random.split(key)
    params = _MODEL.init(init_key, jnp.ones((1, 5)))
    return TrainState(
        step=jnp.array(0, jnp.int32),
        params=params,
        opt_state=_TX.init(params),
        rng=jax.random.key_data(rng_key),
    )


@jax.jit
def _train_step(state, x):
    def loss_fn(params):
        return jnp.mean(_MODEL.apply(params, x) ** 2)

    grads = jax.grad(loss_fn)(state.params)
    updates, opt_state = _TX.update(grads, state.opt_state, state.params)
    return state.replace(
        step=state.step + 1,
        params=optax.apply_updates(state.params, updates),
        opt_state=opt_state,
        rng=jax.random.key_data(jax.random.split(jax.random.wrap_key_data(state.rng))[0]),
    )


def _fresh_state(seed=0):
    return _init_state(jax.random.key(seed))


def _trained_state(n_steps):
    state = _fresh_state()
    x = jax.random.normal(jax.random.key(42), (4, 5))
    for _ in range(n_steps):
        state = _train_step(state, x)
    return state


def _assert_trees_identical(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# orbax leaves tensorstore reads in flight when a restore fails; their callbacks later hit a
# closed event loop, which pytest reports as an unraisable exception. That is orbax noise.
_IGNORE_ORBAX_FAILED_RESTORE_NOISE = pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnraisableExceptionWarning"
)


def test_latest_step_none_on_empty_dir(tmp_path):
    with Checkpointer(tmp_path / "ckpt", max_to_keep=2) as ckpt:
        assert ckpt.latest_step() is None
        with pytest.raises(CheckpointError, match="no checkpoint"):
            ckpt.restore(_fresh_state())


def test_save_restore_is_bit_identical_and_keeps_max_to_keep(tmp_path):
    directory = tmp_path / "ckpt"
    states = {}
    with Checkpointer(directory, max_to_keep=2) as ckpt:
        for n in (1, 2, 3):
            states[n] = _trained_state(n)
            assert ckpt.save(n, states[n], {"step": n, "best": np.float32(0.5)})
        ckpt.wait()
        assert ckpt.all_steps() == [2, 3]
        # A second save of an existing step is skipped instead of failing.
        assert not ckpt.save(3, states[3], {})
    assert sorted(os.listdir(directory)) == ["2", "3"]

    # A new Checkpointer (as after a restart) restores into a freshly initialised state.
    with Checkpointer(directory, max_to_keep=2) as ckpt:
        assert ckpt.latest_step() == 3
        restored, meta = ckpt.restore(_fresh_state())
        assert meta == {"step": 3, "best": 0.5}
        assert isinstance(restored, TrainState)
        assert isinstance(restored.opt_state[0], optax.ScaleByAdamState)
        _assert_trees_identical(restored, states[3])

        older, meta = ckpt.restore(_fresh_state(), step=2)
        assert meta["step"] == 2
        _assert_trees_identical(older, states[2])

        with pytest.raises(CheckpointError, match="available steps"):
            ckpt.restore(_fresh_state(), step=1)


@_IGNORE_ORBAX_FAILED_RESTORE_NOISE
def test_corrupted_checkpoint_raises_checkpoint_error(tmp_path):
    directory = tmp_path / "ckpt"
    with Checkpointer(directory, max_to_keep=2) as ckpt:
        ckpt.save(5, _trained_state(1), {"step": 5})
    data_files = glob.glob(str(directory / "5" / "state" / "**" / "d" / "*"), recursive=True)
    assert data_files
    for f in data_files:
        with open(f, "wb") as fh:
            fh.write(b"garbage")
    with Checkpointer(directory, max_to_keep=2) as ckpt:
        with pytest.raises(CheckpointError) as info:
            ckpt.restore(_fresh_state())
    message = str(info.value)
    assert "step 5" in message and str(directory) in message
    assert "Delete" in message and "another workdir" in message


@_IGNORE_ORBAX_FAILED_RESTORE_NOISE
def test_restore_into_a_different_structure_raises_checkpoint_error(tmp_path):
    with Checkpointer(tmp_path / "ckpt", max_to_keep=1) as ckpt:
        ckpt.save(1, {"w": jnp.ones(3)}, {})
        with pytest.raises(CheckpointError, match="different model"):
            ckpt.restore({"w": jnp.ones(4)})


def test_keep_best_keeps_the_last_and_the_best_scored(tmp_path):
    state = {"w": jnp.zeros((3,))}
    ckpt = Checkpointer(tmp_path, max_to_keep=2, keep_best=2)
    scores = {10: 0.5, 20: 0.9, 30: 0.1, 40: 0.8, 50: None, 60: 0.2}
    for step, score in scores.items():
        ckpt.save(step, {"w": state["w"] + step}, {"step": step}, score=score)
    ckpt.close()
    assert Checkpointer(tmp_path, 2, keep_best=2).all_steps() == [20, 40, 50, 60]
    lower = Checkpointer(tmp_path / "low", max_to_keep=1, keep_best=1, lower_is_better=True)
    for step, score in ((1, 3.0), (2, 1.0), (3, 2.0)):
        lower.save(step, state, {"step": step}, score=score)
    lower.close()
    assert Checkpointer(tmp_path / "low", 1).all_steps() == [2, 3]
