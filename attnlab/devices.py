"""Data parallelism over all devices with `jax.sharding`, on one host or several.

One mesh axis, `data`: every batch is split along its first (batch) axis across the devices and
the train state is replicated; `jax.jit` then partitions the train step, the evaluation and the
greedy decoding loop itself (gradients are averaged by the compiler's all-reduce). With one
device this is a no-op, so the same command runs on a CPU, a GPU or a TPU host unchanged.

Several processes (hosts), after `jax.distributed.initialize()`: the mesh spans every process's
devices. Each process computes the same global batch (batches are a pure function of the step)
and places only the rows of its own devices (`shard_batch`); `to_host` gathers results back.
"""

from __future__ import annotations

import time

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from attnlab.config_lib import ConfigError

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
    """A 1-D mesh over `devices` (default: every device of every process) with the axis `data`."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.array(devices), (DATA_AXIS,))


def check_batch_sizes(mesh: Mesh, **sizes: int) -> None:
    """Each batch size must split evenly over the devices (raises `ConfigError` naming it)."""
    count = mesh.devices.size
    for name, size in sizes.items():
        if size % count:
            raise ConfigError(
                f"config.data.{name}={size} is invalid: it must be a multiple of the "
                f"{count} devices the batch is split over"
            )


def shard_batch(batch: dict, mesh: Mesh, batch_axis: int = 0) -> dict:
    """Places every array of `batch` split along its batch axis (`batch_axis`: 1 for a stack of
    per-seed batches `[K, B, ...]`) over the mesh."""
    sharding = NamedSharding(mesh, PartitionSpec(*([None] * batch_axis), DATA_AXIS))
    # Each process fills only its own devices' rows of the (identical) global batch.
    return {
        k: jax.make_array_from_callback(v.shape, sharding, lambda index, v=v: v[index])
        for k, v in batch.items()
    }


def replicate(tree, mesh: Mesh):
    """Places a copy of every array of `tree` (e.g. the train state) on each device."""
    sharding = NamedSharding(mesh, PartitionSpec())
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    # Every process holds the same values (same seeds): each places its own devices' copies.
    def place(x):
        value = np.asarray(x)
        return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])

    return jax.tree.map(place, tree)


def to_host(tree):
    """Every array of `tree` as a NumPy array holding its global value, on every process.

    One process: `jax.device_get`. Several: a replicated array is read from a local copy; a
    sharded one is gathered across processes (a collective: every process must call this).
    """
    if jax.process_count() == 1:
        return jax.device_get(tree)

    from jax.experimental import multihost_utils

    def gather(x):
        if not isinstance(x, jax.Array) or x.is_fully_addressable:
            return np.asarray(x)
        if x.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))

    return jax.tree.map(gather, tree)


def is_main_process() -> bool:
    """True in the process that writes logs, summaries and plots (process 0)."""
    return jax.process_index() == 0


class Compiled:
    """A jitted function compiled ahead of time once per input shape, timing each compile.

    Keeps the number of programs visible (`len(self.programs)`) and `compile_seconds` exact.
    """

    def __init__(self, fn, donate_argnums=()):
        self._jitted = jax.jit(fn, donate_argnums=donate_argnums)
        self.programs: dict = {}
        self.compile_seconds = 0.0

    def __call__(self, *args):
        key = tuple((x.shape, x.dtype) for x in jax.tree.leaves(args))
        program = self.programs.get(key)
        if program is None:
            start = time.perf_counter()
            program = self._jitted.lower(*args).compile()
            self.compile_seconds += time.perf_counter() - start
            self.programs[key] = program
        return program(*args)
