"""Training-state checkpoints: a thin wrapper around an orbax `CheckpointManager`.

Each checkpoint is a step folder `directory/<step>` with two items: `state`, any pytree of
arrays (e.g. a `flax.struct.dataclass` train state with params, optax state and RNG key), and
`meta`, a small JSON dict (config, data position, best score...). Saves are asynchronous; call
`wait()` or `close()` before the process exits. A save interrupted by a kill leaves only an
orbax temporary folder, which is ignored and cleaned up, so the latest step folder is always a
finished save.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from attnlab.writers import to_jsonable


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupted, or does not match the state it is restored into."""


class Checkpointer:
    """Saves and restores (state, meta) pairs in `directory`, keeping the last `max_to_keep`."""

    def __init__(self, directory: str | os.PathLike, max_to_keep: int):
        if max_to_keep < 1:
            raise ValueError(f"max_to_keep must be >= 1, got {max_to_keep}")
        # orbax resolves paths itself; an absolute path keeps error messages unambiguous.
        self.directory = os.path.abspath(os.fspath(directory))
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, create=True, cleanup_tmp_directories=True
            ),
        )

    def latest_step(self) -> int | None:
        """Return the step of the newest finished checkpoint, or None when there is none."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        """Return the steps of all kept checkpoints, in increasing order."""
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: Any, meta: dict, force: bool = False) -> bool:
        """Start an asynchronous save of `state` and `meta` at `step`; return whether it started.

        `meta` must be JSON-serialisable (numpy values are converted; non-finite floats become
        null). Returns False without saving when a checkpoint for `step` already exists (e.g.
        the first step after resuming) or `step` is older than the latest one. `force` is passed
        to orbax, which skips its save-interval policy; the policy here saves every call anyway.
        """
        step = int(step)
        if step in self._manager.all_steps():
            # orbax raises on an existing step even with force; the saved state is the same step.
            return False
        return self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(to_jsonable(meta))
            ),
            force=force,
        )

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict]:
        """Restore `(state, meta)` from `step`, or from the latest checkpoint when `step` is None.

        `abstract_state` gives the tree structure, shapes, dtypes and shardings to restore into:
        a freshly initialised state or its `jax.ShapeDtypeStruct` tree. The restored state has
        the same pytree structure and leaf types (dataclasses, optax states) as `abstract_state`.
        Raises `CheckpointError` when there is no such checkpoint or it cannot be read.
        """
        # A save still in flight would otherwise be invisible (or half-visible) to the restore.
        self._manager.wait_until_finished()
        available = self.all_steps()
        if step is None:
            step = self.latest_step()
            if step is None:
                raise CheckpointError(f"no checkpoint to restore in {self.directory}")
        step = int(step)
        if step not in available:
            raise CheckpointError(
                f"no checkpoint for step {step} in {self.directory}; available steps: {available}"
            )
        target = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
        try:
            restored = self._manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()
                ),
            )
        except Exception as e:
            step_dir = os.path.join(self.directory, str(step))
            raise CheckpointError(
                f"cannot restore the checkpoint of step {step} in {self.directory}: it is "
                f"corrupted or incomplete, or it was written for a different model or state "
                f"structure ({type(e).__name__}: {e}). Delete {step_dir} to resume from the "
                f"previous checkpoint (available steps: {available}), or use another workdir."
            ) from e
        return restored.state, restored.meta

    def wait(self) -> None:
        """Block until every pending asynchronous save has finished."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Wait for pending saves and release the manager's resources."""
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
