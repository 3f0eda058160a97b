"""Command line: `python -m attnlab {train,sweep,compare,predict}`; the only module with flags.

    python -m attnlab train --config=configs/reverse.py --workdir=runs/reverse
    python -m attnlab sweep --config=configs/sweeps/scores.py --workdir=runs/scores
    python -m attnlab compare runs/scores
    python -m attnlab predict --workdir=runs/g2p --input=words.txt --heatmaps=runs/g2p/maps

Any config field can be overridden with `--config.<section>.<field>=value` (for a sweep the
override applies to every trial); a config file may take an argument after a colon
(`--config=configs/reverse.py:quick`). Exit code 2 means bad input (the message says what to fix).
"""

from __future__ import annotations

import json
import logging as py_logging
import os
import sys

import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from attnlab.config import ConfigError, flatten

COMMANDS = ("train", "sweep", "compare", "predict")
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
FLAGS = flags.FLAGS

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    None,
    "Path to a config file, e.g. configs/reverse.py or configs/reverse.py:quick.",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for the run's (or sweep's) outputs.")
_SWEEP = config_flags.DEFINE_config_dict(
    "sweep",
    ml_collections.ConfigDict(
        {
            "parallel": 1,
            "index": -1,
            "dry_run": False,
            "backend": "local",
            "ray_address": "",
            "cpus_per_trial": 1.0,
            "gpus_per_trial": 0.0,
        }
    ),
    "sweep: `parallel` trials at once; `index` >= 0 runs only that trial (one job of a job "
    "array); `dry_run` lists the trials; `backend` local or ray (`ray_address`: a cluster, "
    "empty = start a local instance; `cpus_per_trial`, `gpus_per_trial`: resources per trial).",
)
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed",
    False,
    "train: one process of a multi-process (multi-host) run; calls jax.distributed.initialize() "
    "with the three flags below, or detects them (SLURM, Open MPI, TPU pods, ...) when unset.",
)
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "--distributed: host:port of process 0."
)
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "--distributed: process count.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "--distributed: this process's index.")
_INPUT = flags.DEFINE_string("input", "-", "predict: a file with one source per line (- = stdin)")
_OUTPUT = flags.DEFINE_string("output", "-", "predict: where the predictions go (- = stdout)")
_HEATMAPS = flags.DEFINE_string("heatmaps", None, "predict: draw one attention map per input here")
_BEAM = flags.DEFINE_integer("beam_size", None, "predict: beam size (default: the run's eval one)")
_MAX_LEN = flags.DEFINE_integer("max_len", 0, "predict: most output tokens (0: 2 x source + 10)")
_FORCE = flags.DEFINE_bool(
    "force", False, "train: continue a work directory whose run has a different config"
)
_VERBOSE = flags.DEFINE_bool("verbose", False, "show the traceback of an error")
_METRIC = flags.DEFINE_string("metric", "eval/seq_accuracy", "compare: metric that picks the best")
_OUT = flags.DEFINE_string("out", None, "compare: report directory (default: <first DIR>/report)")


class _QuietLibraries(py_logging.Filter):
    """Keeps attnlab's progress lines and every warning; drops other libraries' INFO chatter."""

    def filter(self, record: py_logging.LogRecord) -> bool:
        return record.levelno >= py_logging.WARNING or record.pathname.startswith(_PACKAGE_DIR)


def _initialize_distributed() -> None:
    """Joins the other processes of a multi-host run (before any JAX computation)."""
    import jax

    # CPU processes need a cross-process collectives implementation; GPUs and TPUs ignore this.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=_COORDINATOR.value,
        num_processes=_NUM_PROCESSES.value,
        process_id=_PROCESS_ID.value,
    )


def _train() -> int:
    if _DISTRIBUTED.value:
        _initialize_distributed()
    if _CONFIG.value.get("family") == "ram":  # the recurrent attention model (attnlab.ram)
        from attnlab.ram import train
    else:
        from attnlab import train  # after flag parsing: keeps --help fast

    summary = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value, force=_FORCE.value)
    keys = sorted(k for k in summary if k.startswith(("eval", "test")))
    print("\n".join(f"{k}: {summary[k]:.4f}" for k in keys))
    return 0


def _sweep() -> int:
    from attnlab import backends, sweep

    path = config_flags.get_config_filename(FLAGS["config"])
    overrides = config_flags.get_override_values(FLAGS["config"])
    common = flatten(overrides)
    trials = sweep.load_sweep(path)
    if _SWEEP.value.dry_run:
        for t in trials:
            print(f"{t.index:4d}  {t.name}  {dict(common, **t.overrides)}")
        return 0
    index = _SWEEP.value.index if _SWEEP.value.index >= 0 else None

    from attnlab.progress import Progress

    bar = Progress(1 if index is not None else len(trials), label="sweep")

    def progress(trial, all_trials):
        done = sum(t.status == "completed" for t in all_trials)
        failed = sum(t.status == "failed" for t in all_trials)
        if trial.status == "failed":  # failures are always reported, terminal or not
            print(f"\nfailed: {trial.name}: {trial.error}", file=sys.stderr, flush=True)
        bar.update(
            done + failed,
            force=True,
            done=done,
            failed=failed,
            left=len(all_trials) - done - failed,
            last=trial.name,
        )

    options = _SWEEP.value
    backend = backends.make_backend(
        options.backend,
        options.parallel,
        address=options.ray_address or None,
        cpus_per_trial=options.cpus_per_trial,
        gpus_per_trial=options.gpus_per_trial,
    )
    try:
        trials = sweep.run_sweep(
            path,
            _WORKDIR.value,
            index=index,
            on_done=progress,
            common_overrides=common,
            backend=backend,
        )
    finally:
        getattr(backend, "shutdown", lambda: None)()
    bar.close()
    failed = [t for t in trials if t.status == "failed"]
    print(
        f"{len(trials) - len(failed)} of {len(trials)} trials completed; status in "
        f"{os.path.join(_WORKDIR.value, sweep.STATUS_FILE)}"
    )
    return 1 if failed else 0


def _predict() -> int:
    from attnlab import predict

    saved = os.path.join(_WORKDIR.value, "config.json")
    if os.path.exists(saved):
        with open(saved) as f:
            if json.load(f).get("family") == "ram":
                raise ConfigError(
                    f"{_WORKDIR.value} holds a recurrent attention model (family ram): predict "
                    "reads seq2seq runs only; its glimpses are drawn in glimpses/"
                )

    if _INPUT.value == "-":
        lines = sys.stdin.read().splitlines()
    else:
        with open(_INPUT.value) as f:
            lines = f.read().splitlines()
    predictor = predict.Predictor(_WORKDIR.value, beam_size=_BEAM.value)
    results = predictor.predict(lines, max_len=_MAX_LEN.value)
    text = "".join(r.text + "\n" for r in results)
    if _OUTPUT.value == "-":
        sys.stdout.write(text)
    else:
        with open(_OUTPUT.value, "w") as f:
            f.write(text)
    if _HEATMAPS.value:
        os.makedirs(_HEATMAPS.value, exist_ok=True)
        for i, r in enumerate(results):
            if r.source:
                path = os.path.join(_HEATMAPS.value, f"input_{i:04d}.png")
                predict.draw(r, path, title=" ".join(r.source))
    unknown = sum(r.unknown for r in results)
    empty = sum(not r.source for r in results)
    print(
        f"{len(results)} inputs (checkpoint step {predictor.step}, beam {predictor.beam_size}); "
        f"{unknown} unknown source tokens mapped to <unk>; {empty} empty lines",
        file=sys.stderr,
    )
    return 0


def _compare(directories: list[str]) -> int:
    from attnlab import compare

    print(compare.compare(directories, _OUT.value, best_metric=_METRIC.value), end="")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in COMMANDS:
        raise app.UsageError(f"usage: python -m attnlab {{{','.join(COMMANDS)}}} ...")
    command, rest = argv[1], argv[2:]
    if command == "compare":
        if not rest:
            raise app.UsageError("usage: python -m attnlab compare DIR [DIR...]")
    elif command == "predict":
        if rest or _WORKDIR.value is None:
            raise app.UsageError("usage: python -m attnlab predict --workdir=RUN [--input=FILE]")
    elif rest or FLAGS["config"].value is None or _WORKDIR.value is None:
        raise app.UsageError(f"usage: python -m attnlab {command} --config=FILE --workdir=DIR")
    else:
        path = config_flags.get_config_filename(FLAGS["config"]).partition(":")[0]
        if not os.path.isfile(path):
            print(f"error: config file '{path}' not found", file=sys.stderr)
            return 2
    logging.get_absl_handler().addFilter(_QuietLibraries())
    from attnlab.checkpoints import CheckpointError
    from attnlab.train import NonFiniteLossError, TrainingInterrupted

    try:
        if command == "train":
            return _train()
        if command == "sweep":
            return _sweep()
        if command == "predict":
            return _predict()
        return _compare(rest)
    except (ConfigError, FileNotFoundError, CheckpointError) as err:
        return _report(err, 2)
    except NonFiniteLossError as err:
        return _report(err, 1)
    except TrainingInterrupted as err:
        return _report(err, 128 + err.signum)


def _report(err: Exception, code: int) -> int:
    """One readable line for an expected error (the traceback too with --verbose)."""
    if _VERBOSE.value:
        import traceback

        traceback.print_exception(err)
    print(f"error: {err}", file=sys.stderr)
    return code


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's parser, but a bad flag (unknown field, wrong type, missing config file) is one
    line and exit code 2, like every other bad input."""
    try:
        return FLAGS(argv)
    except flags.Error as err:
        print(f"error: {err}", file=sys.stderr)
    except AttributeError as err:  # ml_collections: a field that does not exist
        detail = err.args[0] if err.args else err
        detail = detail.args[0] if isinstance(detail, KeyError) and detail.args else detail
        print(f"error: unknown config field {detail}", file=sys.stderr)
    sys.exit(2)


def run() -> None:
    """Console-script entry point (`attnlab train ...`)."""
    app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
