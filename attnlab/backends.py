"""Where a sweep's trials run: local processes or a Ray cluster, behind one small interface.

A backend has one method, `run(job, items)`, which calls `job(item)` for every item somewhere
and yields the results as they finish (in completion order). A sweep's job runs one training
process in the trial's own work directory, so any backend that can run a Python function where
the sweep directory is visible (a shared file system) can run a sweep.

    LocalBackend(parallel=2)                       # threads, each waiting on a subprocess
    RayBackend(address="auto", cpus_per_trial=2)   # one Ray task per trial

`ray` is an optional extra: `pip install -e ".[ray]"`.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterable, Iterator

from attnlab.config_lib import ConfigError

BACKENDS = ("local", "ray")


class LocalBackend:
    """Runs up to `parallel` jobs at once in threads of this process (each starts a process)."""

    def __init__(self, parallel: int = 1):
        if parallel < 1:
            raise ConfigError(f"sweep.parallel={parallel} is invalid: must be >= 1")
        self.parallel = parallel

    def run(self, job: Callable, items: Iterable) -> Iterator:
        with concurrent.futures.ThreadPoolExecutor(max_workers=self.parallel) as pool:
            futures = [pool.submit(job, item) for item in items]
            for future in concurrent.futures.as_completed(futures):
                yield future.result()


class RayBackend:
    """Runs each job as a Ray task reserving `cpus_per_trial` CPUs and `gpus_per_trial` GPUs.

    `address`: a running cluster (`"auto"`, `"ray://host:10001"`) or None to start a local
    instance with `num_cpus` CPUs (all of this machine's if None). Ray schedules as many trials
    at once as the reserved resources allow. The sweep directory must be on a file system that
    every Ray node sees; each task starts `python -m attnlab train` there, as the local backend
    does.
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
        self._started_here = not ray.is_initialized()
        if self._started_here:
            kwargs = {"address": address} if address else {"num_cpus": num_cpus}
            ray.init(**kwargs, include_dashboard=False, log_to_driver=False)

    def run(self, job: Callable, items: Iterable) -> Iterator:
        ray = self._ray
        remote = ray.remote(_call).options(**self.options, max_retries=0)
        pending = [remote.remote(job, item) for item in items]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])

    def shutdown(self) -> None:
        """Stops the local Ray instance if this backend started it."""
        if self._started_here and self._ray.is_initialized():
            self._ray.shutdown()


def _call(job: Callable, item):
    """`job(item)`: Ray's remote functions must be plain functions, not partials."""
    return job(item)


def make_backend(name: str, parallel: int = 1, **ray_options):
    """`"local"` or `"ray"` -> a backend; an unknown name lists the valid ones."""
    if name == "local":
        return LocalBackend(parallel)
    if name == "ray":
        return RayBackend(**ray_options)
    raise ConfigError(f"sweep.backend='{name}' is unknown; valid backends: {', '.join(BACKENDS)}")
