"""Where a sweep's trials run: local processes or a Ray cluster, behind one small interface.

A backend has one method, `run(job, items)`, which calls `job(item)` for every item somewhere
and yields the results as they finish (in completion order). A sweep's job runs one training
process in the trial's own work directory, so any backend that can run a Python function where
the sweep directory is visible (a shared file system) can run a sweep. A job may take an `env`
keyword: environment variables for the trial's process (its GPUs, its share of GPU memory).

    LocalBackend(parallel=2)                       # threads, each waiting on a subprocess
    LocalBackend(parallel=4, devices="0,1,2,3")    # ... each trial on its own GPU
    RayBackend(address="auto", cpus_per_trial=2)   # one Ray task per trial

`ray` is an optional extra: `pip install -e ".[ray]"`.

GPUs of a local sweep: with G visible GPUs (`CUDA_VISIBLE_DEVICES` when set, else the GPUs
`nvidia-smi -L` lists, else none: the trials' environment is left alone) and `parallel` trials
at once, each running trial gets `devices_per_trial` GPUs of its own through
`CUDA_VISIBLE_DEVICES` (by default G // parallel, at least 1). The GPUs are split into slots of
that many; a trial takes a free slot when it starts and hands it back when it ends, so two
trials never share a GPU while enough slots exist, however their durations differ. With more
trials at once than slots, the slots are shared evenly and each trial's JAX gets
`XLA_PYTHON_CLIENT_MEM_FRACTION` = 0.9 / (trials per slot) instead of its default 0.75 (unless
the sweep's own environment sets the memory variables): without it, the first trial would
pre-allocate three quarters of the GPU and the next would run out of memory.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import math
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator

from attnlab.config_lib import ConfigError

BACKENDS = ("local", "ray")
# JAX's GPU memory settings: when the sweep's environment sets one, the trials keep it as it is
MEMORY_VARIABLES = (
    "XLA_PYTHON_CLIENT_MEM_FRACTION",
    "XLA_PYTHON_CLIENT_PREALLOCATE",
    "XLA_PYTHON_CLIENT_ALLOCATOR",
)
_END = object()


def visible_gpus(environ=None, smi: str = "nvidia-smi") -> list[str]:
    """The GPUs trials may use, without importing JAX: the entries of `CUDA_VISIBLE_DEVICES`
    when it is set (`""` or `-1`: none), else the indices of the GPUs `nvidia-smi -L` lists,
    else [] (no NVIDIA driver: the trials' environment is left alone)."""
    environ = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in environ:
        entries = [d.strip() for d in environ["CUDA_VISIBLE_DEVICES"].split(",")]
        entries = [d for d in entries if d]
        return [] if entries[:1] == ["-1"] else entries
    path = shutil.which(smi)
    if path is None:
        return []
    try:
        out = subprocess.run([path, "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(ln for ln in out.splitlines() if ln.startswith("GPU "))]


def parse_devices(spec: str | None) -> list[str] | None:
    """`--sweep.devices`: `""` / None (find them: `visible_gpus`), `none` (assign none), or a
    comma-separated list such as `0,1,2,3` (CUDA device indices or UUIDs)."""
    if spec is None or not str(spec).strip():
        return None
    if str(spec).strip().lower() == "none":
        return []
    devices = [d.strip() for d in str(spec).split(",")]
    if not all(devices) or len(set(devices)) != len(devices):
        raise ConfigError(
            f"sweep.devices={spec!r} is invalid: give distinct devices separated by commas, "
            "e.g. 0,1,2,3 (or none)"
        )
    return devices


def memory_fraction(trials_per_device: float) -> str:
    """`XLA_PYTHON_CLIENT_MEM_FRACTION` for a GPU shared by `trials_per_device` processes:
    together they pre-allocate 90% of it (each also needs some memory outside JAX's pool)."""
    return f"{math.floor(90 / trials_per_device) / 100:.2f}"


def _memory_env(trials_per_device: float, environ=None) -> dict:
    environ = os.environ if environ is None else environ
    if trials_per_device <= 1 or any(v in environ for v in MEMORY_VARIABLES):
        return {}
    return {"XLA_PYTHON_CLIENT_MEM_FRACTION": memory_fraction(trials_per_device)}


class DevicePool:
    """Slots of `per_trial` GPUs each, handed to trials as they start and back as they end.

    `acquire()` returns the slot with the fewest trials on it and the environment variables of
    a trial there; `release(slot)` hands it back. With `parallel` <= the number of slots no
    slot ever holds two trials; with more, each slot holds at most ceil(parallel / slots) and
    the trials on a shared slot get their share of its memory (`memory_fraction`)."""

    def __init__(self, devices: list[str], parallel: int, per_trial: int = 0, environ=None):
        if per_trial < 0:
            raise ConfigError(f"sweep.devices_per_trial={per_trial} is invalid: must be >= 0")
        per_trial = per_trial or max(1, len(devices) // parallel)
        if per_trial > len(devices):
            raise ConfigError(
                f"sweep.devices_per_trial={per_trial} is invalid: only {len(devices)} devices "
                f"({','.join(devices)})"
            )
        self.slots = [
            tuple(devices[i : i + per_trial])
            for i in range(0, len(devices) - per_trial + 1, per_trial)
        ]
        self.sharing = math.ceil(parallel / len(self.slots))  # trials per slot at most
        self.extra = _memory_env(self.sharing, environ)
        self._load = [0] * len(self.slots)
        self._free = threading.Condition()

    def acquire(self) -> tuple[int, dict]:
        with self._free:
            while min(self._load) >= self.sharing:
                self._free.wait()
            slot = self._load.index(min(self._load))
            self._load[slot] += 1
        return slot, dict(self.extra, CUDA_VISIBLE_DEVICES=",".join(self.slots[slot]))

    def release(self, slot: int) -> None:
        with self._free:
            self._load[slot] -= 1
            self._free.notify()

    @contextlib.contextmanager
    def slot(self):
        """`with pool.slot() as env:` the environment of one trial, on a slot of its own."""
        slot, env = self.acquire()
        try:
            yield env
        finally:
            self.release(slot)

    def describe(self) -> str:
        shared = f", {self.sharing} trials per slot" if self.sharing > 1 else ""
        return f"{len(self.slots)} device slots {['/'.join(s) for s in self.slots]}{shared}"


class LocalBackend:
    """Runs up to `parallel` jobs at once in threads of this process (each starts a process).

    `devices`: the GPUs to hand out (`None`: `visible_gpus()`; `[]`: leave the environment
    alone); `devices_per_trial`: GPUs per trial (0: an even share). See the module docstring.
    `items` may be a lazy iterator: it is read only when a job may start, so what a job's result
    teaches (a searched sweep's next trial) can shape the next item."""

    def __init__(self, parallel: int = 1, devices=None, devices_per_trial: int = 0):
        if parallel < 1:
            raise ConfigError(f"sweep.parallel={parallel} is invalid: must be >= 1")
        self.parallel = parallel
        if devices is None:
            devices = visible_gpus()
        elif isinstance(devices, str):
            devices = parse_devices(devices)
            devices = visible_gpus() if devices is None else devices
        self.pool = DevicePool(list(devices), parallel, devices_per_trial) if devices else None
        if not devices and devices_per_trial:
            raise ConfigError(
                f"sweep.devices_per_trial={devices_per_trial}: no GPUs are visible here "
                "(set --sweep.devices=0,1,... to name them)"
            )

    def _call(self, job: Callable, item):
        if self.pool is None:
            return job(item)
        with self.pool.slot() as env:
            return job(item, env=env)

    def run(self, job: Callable, items: Iterable) -> Iterator:
        items = iter(items)
        with concurrent.futures.ThreadPoolExecutor(max_workers=self.parallel) as pool:
            running: set = set()

            def fill():
                while len(running) < self.parallel:
                    item = next(items, _END)
                    if item is _END:
                        return
                    running.add(pool.submit(self._call, job, item))

            fill()
            while running:
                done, _ = concurrent.futures.wait(
                    running, return_when=concurrent.futures.FIRST_COMPLETED
                )
                for future in done:
                    running.discard(future)
                    yield future.result()
                fill()


class RayBackend:
    """Runs each job as a Ray task reserving `cpus_per_trial` CPUs and `gpus_per_trial` GPUs.

    `address`: a running cluster (`"auto"`, `"ray://host:10001"`) or None to start a local
    instance with `num_cpus` CPUs (all of this machine's if None). Ray schedules as many trials
    at once as the reserved resources allow. The sweep directory must be on a file system that
    every Ray node sees; each task starts `python -m attnlab train` there, as the local backend
    does. Ray sets each task's `CUDA_VISIBLE_DEVICES`; with a fraction of a GPU per trial
    (`gpus_per_trial=0.5`) the trials sharing one also get their share of its memory
    (`XLA_PYTHON_CLIENT_MEM_FRACTION`, see the module docstring).
    """

    def __init__(
        self,
        address: str | None = None,
        cpus_per_trial: float = 1,
        gpus_per_trial: float = 0,
        num_cpus: int | None = None,
    ):
        try:
            import ray
        except ImportError as err:
            raise ConfigError(
                "sweep.backend='ray' needs Ray: pip install -e '.[ray]' (or pip install ray)"
            ) from err
        if cpus_per_trial <= 0 or gpus_per_trial < 0:
            raise ConfigError(
                f"sweep.cpus_per_trial={cpus_per_trial} / sweep.gpus_per_trial={gpus_per_trial}"
                " are invalid: need cpus > 0 and gpus >= 0"
            )
        self._ray = ray
        self.options = {"num_cpus": cpus_per_trial, "num_gpus": gpus_per_trial}
        sharing = 1 / gpus_per_trial if 0 < gpus_per_trial < 1 else 1
        self.env = _memory_env(sharing)
        self._started_here = not ray.is_initialized()
        if self._started_here:
            kwargs = {"address": address} if address else {"num_cpus": num_cpus}
            ray.init(**kwargs, include_dashboard=False, log_to_driver=False)

    def run(self, job: Callable, items: Iterable) -> Iterator:
        ray = self._ray
        remote = ray.remote(_call).options(**self.options, max_retries=0)
        pending = [remote.remote(job, item, self.env) for item in items]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])

    def shutdown(self) -> None:
        """Stops the local Ray instance if this backend started it."""
        if self._started_here and self._ray.is_initialized():
            self._ray.shutdown()


def _call(job: Callable, item, env: dict):
    """`job(item)`: Ray's remote functions must be plain functions, not partials."""
    return job(item, env=env) if env else job(item)


def make_backend(
    name: str, parallel: int = 1, devices=None, devices_per_trial: int = 0, **ray_options
):
    """`"local"` or `"ray"` -> a backend; an unknown name lists the valid ones. `devices` and
    `devices_per_trial` are the local backend's (Ray places trials on GPUs itself)."""
    if name == "local":
        return LocalBackend(parallel, devices, devices_per_trial)
    if name == "ray":
        if parse_devices(devices) is not None or devices_per_trial:
            raise ConfigError(
                "sweep.devices / sweep.devices_per_trial are the local backend's; with "
                "sweep.backend=ray set sweep.gpus_per_trial"
            )
        return RayBackend(**ray_options)
    raise ConfigError(f"sweep.backend='{name}' is unknown; valid backends: {', '.join(BACKENDS)}")
