"""Training-state checkpoints: a thin wrapper around an orbax `CheckpointManager`.

Each checkpoint is a step folder `directory/<step>` with two items: `state`, any pytree of
arrays (e.g. a `flax.struct.dataclass` train state with params, optax state and RNG key), and
`meta`, a small JSON dict (config, data position, best score...). Saves are asynchronous; call
`wait()` or `close()` before the process exits. A save interrupted by a kill leaves only an
orbax temporary folder, which is ignored and cleaned up, so the latest step folder is always a
finished save.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import jax
import orbax.checkpoint as ocp

from attnlab.writers import to_jsonable, write_json_atomic


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupted, or does not match the state it is restored into."""


def _silence_closed_event_loop() -> None:
    """After a failed restore or save (a damaged checkpoint, a full disk), the storage
    library's pending reads and writes call back into an event loop that is already closed, and
    each prints a `RuntimeError: Event loop is closed` traceback (as an unraisable exception).
    They say nothing the error line does not: drop them (installed once)."""
    previous = sys.unraisablehook
    if getattr(previous, "attnlab_quiet", False):
        return

    def hook(unraisable):
        if "Event loop is closed" not in str(unraisable.exc_value):
            previous(unraisable)

    hook.attnlab_quiet = True
    sys.unraisablehook = hook


class Checkpointer:
    """Saves and restores (state, meta) pairs in `directory`, keeping the last `max_to_keep`
    and, with `keep_best > 0`, also the `keep_best` best by the score passed to `save` (higher
    is better unless `lower_is_better`). Scores are kept in `directory/scores.json`."""

    def __init__(
        self,
        directory: str | os.PathLike,
        max_to_keep: int,
        keep_best: int = 0,
        lower_is_better: bool = False,
    ):
        if max_to_keep < 1:
            raise ValueError(f"max_to_keep must be >= 1, got {max_to_keep}")
        if keep_best < 0:
            raise ValueError(f"keep_best must be >= 0, got {keep_best}")
        # orbax resolves paths itself; an absolute path keeps error messages unambiguous.
        self.directory = os.path.abspath(os.fspath(directory))
        self.max_to_keep, self.keep_best, self.lower_is_better = (
            max_to_keep,
            keep_best,
            lower_is_better,
        )
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                # With keep_best, retention is done here (orbax keeps either the last or the best).
                max_to_keep=None if keep_best else max_to_keep,
                create=True,
                cleanup_tmp_directories=True,
            ),
        )
        self._scores_path = os.path.join(self.directory, "scores.json")
        _silence_closed_event_loop()

    def scores(self) -> dict[int, float]:
        """`{step: score}` of the checkpoints saved with a score."""
        if not os.path.exists(self._scores_path):
            return {}
        with open(self._scores_path) as f:
            return {int(k): v for k, v in json.load(f).items()}

    def _prune(self) -> None:
        """Deletes finished checkpoints that are neither among the last `max_to_keep` nor among
        the `keep_best` best scored ones."""
        steps = self.all_steps()
        keep = set(steps[-self.max_to_keep :])
        scored = [(s, v) for s, v in self.scores().items() if s in steps and v is not None]
        sign = 1.0 if self.lower_is_better else -1.0
        keep |= {
            s for s, _ in sorted(scored, key=lambda sv: (sign * sv[1], sv[0]))[: self.keep_best]
        }
        for step in steps:
            if step not in keep:
                self._manager.delete(step)

    def latest_step(self) -> int | None:
        """Return the step of the newest finished checkpoint, or None when there is none."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        """Return the steps of all kept checkpoints, in increasing order."""
        return sorted(self._manager.all_steps())

    def save(
        self, step: int, state: Any, meta: dict, force: bool = False, score: float | None = None
    ) -> bool:
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
        if self.keep_best:
            self._manager.wait_until_finished()  # prune finished saves only
            if score is not None:
                scores = {str(k): v for k, v in self.scores().items()} | {str(step): score}
                write_json_atomic(self._scores_path, scores)
            self._prune()
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
            _silence_closed_event_loop()
            step_dir = os.path.join(self.directory, str(step))
            # the library's message first sentence (it goes on with a long storage spec)
            reason = str(e).split(" [tensorstore_spec")[0].split(": Error reading")[0][:300]
            raise CheckpointError(
                f"cannot restore the checkpoint of step {step} in {self.directory}: it is "
                f"corrupted or incomplete, or it was written for a different model or state "
                f"structure ({type(e).__name__}: {reason}). Delete {step_dir} to resume from the "
                f"previous checkpoint (available steps: {available}), or use another workdir."
            ) from e
        return restored.state, restored.meta

    def wait(self) -> None:
        """Block until every pending asynchronous save has finished (then apply retention)."""
        self._manager.wait_until_finished()
        if self.keep_best:
            self._prune()

    def close(self) -> None:
        """Wait for pending saves and release the manager's resources."""
        self.wait()
        self._manager.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
