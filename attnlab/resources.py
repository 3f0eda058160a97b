"""Will a config fit in memory? An estimate made before any work, and the one line that refuses
a config that cannot fit.

Each family's config module may define `memory_estimate(config) -> list[Need]`: the big
allocations of one run (parameters and optimiser state, training activations, evaluation
buffers, the data held on the host), each with the config fields that drive it. The estimate is
an order of magnitude (float32, the largest tensors only, no allocator overhead): it refuses what
cannot possibly fit (a size typed with three zeros too many, a beam of 100,000) and lets through
anything plausible; an out-of-memory error that still happens is turned into one line by the
command line (`attnlab.__main__`).

Imports nothing heavy: the command line and sweeps check every trial with it before starting JAX.
"""

from __future__ import annotations

import dataclasses
import os
import sys

from attnlab.config_lib import ConfigError

GIB = 2**30


@dataclasses.dataclass(frozen=True)
class Need:
    """One big allocation: what it is, its size in bytes, the config fields that drive it."""

    what: str
    bytes: int
    fields: tuple[str, ...]


def available_bytes() -> tuple[int, str]:
    """(bytes, what they are): the accelerator's memory when JAX already runs on one, else the
    host's physical memory (a CPU run allocates there)."""
    jax = sys.modules.get("jax")
    if jax is not None:
        try:
            device = jax.devices()[0]
            if device.platform != "cpu":
                limit = (device.memory_stats() or {}).get("bytes_limit")
                if limit:
                    return int(limit), f"the {device.platform} device's memory"
        except Exception:  # no backend yet, or no memory stats: fall back to the host
            pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "this machine's memory"


def format_bytes(n: float) -> str:
    if n >= 2**60:
        return "more than an exbibyte"
    for unit, size in (("PiB", 2**50), ("TiB", 2**40), ("GiB", GIB), ("MiB", 2**20)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 1024:.1f} KiB"


def check(needs: list[Need], limit: int | None = None, where: str | None = None) -> None:
    """Raises `ConfigError` (one line) when the largest of `needs` (allocations that are alive
    at the same time are summed by the family) exceeds `limit` bytes (default: what
    `available_bytes` finds), naming the estimate and the fields that drive it."""
    if not needs:
        return
    if limit is None:
        limit, where = available_bytes()
    worst = max(needs, key=lambda n: n.bytes)
    if worst.bytes <= limit:
        return
    raise ConfigError(
        f"config needs about {format_bytes(worst.bytes)} for {worst.what} but "
        f"{where or 'the limit'} is {format_bytes(limit)}; lower {', '.join(worst.fields)}"
    )
