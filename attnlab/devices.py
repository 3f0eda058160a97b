"""Data parallelism over all local devices with `jax.sharding`.

One mesh axis, `data`: every batch is split along its first (batch) axis across the devices and
the train state is replicated; `jax.jit` then partitions the train step, the evaluation and the
greedy decoding loop itself (gradients are averaged by the compiler's all-reduce). With one
device this is a no-op, so the same command runs on a CPU, a GPU or a TPU host unchanged.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from attnlab.config import ConfigError

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
    """A 1-D mesh over `devices` (default: all local devices) with the axis `data`."""
    devices = list(jax.local_devices() if devices is None else devices)
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
    return {k: jax.device_put(v, sharding) for k, v in batch.items()}


def replicate(tree, mesh: Mesh):
    """Places a copy of every array of `tree` (e.g. the train state) on each device."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))
