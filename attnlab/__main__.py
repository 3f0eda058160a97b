"""Command line: `python -m attnlab SUBCOMMAND [flags]`; the only module with flags.

    python -m attnlab train --config=configs/reverse.py --workdir=runs/reverse
    python -m attnlab sweep --config=configs/sweeps/scores.py --workdir=runs/scores
    python -m attnlab sweep --config=configs/sweeps/dates_search.py --workdir=runs/dates_search \
        --sweep.search=tpe --sweep.num_trials=16 --sweep.parallel=2
    python -m attnlab compare runs/scores
    python -m attnlab predict --workdir=runs/g2p --input=words.txt --heatmaps=runs/g2p/maps
    python -m attnlab config --config=configs/reverse.py:quick --config.model.score=general

Any config field can be overridden with `--config.<section>.<field>=value` (for a sweep the
override applies to every trial); a config file may take an argument after a colon
(`--config=configs/reverse.py:quick`). Exit code 2 means bad input, with one line saying what
to fix; `--verbose` adds the traceback. `--help` and `SUBCOMMAND --help` answer without
starting JAX; each subcommand defines only its own flags.
"""

from __future__ import annotations

import os
import sys

USAGE = "usage: python -m attnlab {train,sweep,compare,predict,config} [flags] (--help for more)"

# name -> (what it does, its positional arguments, its flags)
COMMANDS = {
    "train": (
        "Train and evaluate one run (K seeds with --config.num_seeds=K) into a work directory; "
        "re-running the same command resumes it.",
        "",
        (
            "config",
            "workdir",
            "force",
            "distributed",
            "coordinator_address",
            "num_processes",
            "process_id",
            "verbose",
        ),
    ),
    "sweep": (
        "Run every trial of a sweep file (its get_sweep() grid, or an Optuna search of its "
        "get_search() space), each a train process in its own directory; re-running skips "
        "finished trials.",
        "",
        ("config", "workdir", "sweep", "verbose"),
    ),
    "compare": (
        "Tables (mean ± 95% CI over seeds, paired tests) and plots of the runs under DIRs.",
        "DIR [DIR...]",
        ("metric", "out", "facet", "verbose"),
    ),
    "predict": (
        "Predictions of a trained seq2seq run for new inputs, one per line.",
        "",
        ("workdir", "input", "output", "heatmaps", "beam_size", "max_len", "verbose"),
    ),
    "config": (
        "Print the resolved, validated config (with its --config.* overrides) and exit.",
        "",
        ("config", "verbose"),
    ),
}
REQUIRED = {
    "train": ("config", "workdir"),
    "sweep": ("config", "workdir"),
    "predict": ("workdir",),
    "config": ("config",),
}
SWEEP_DEFAULTS = {
    "parallel": 1,
    "index": -1,
    "dry_run": False,
    "backend": "local",
    "ray_address": "",
    "cpus_per_trial": 1.0,
    "gpus_per_trial": 0.0,
    "search": "grid",
    "num_trials": 0,
    "metric": "",
    "prune": "none",
    "prune_startup": 5,
    "seed": -1,
    "devices": "",
    "devices_per_trial": 0,
}
# flag -> (help text, default); defined lazily, only for the subcommand that takes it
FLAG_HELP = {
    "config": "a config file, e.g. configs/reverse.py or configs/reverse.py:quick; any field "
    "is then overridable as --config.<section>.<field>=value",
    "workdir": "the run's (or sweep's, or the predicting run's) directory",
    "force": "continue a work directory whose run has a different config",
    "distributed": "one process of a multi-process (multi-host) run: calls "
    "jax.distributed.initialize() with the three flags below, or detects them (SLURM, "
    "Open MPI, TPU pods) when unset",
    "coordinator_address": "--distributed: host:port of process 0",
    "num_processes": "--distributed: the number of processes",
    "process_id": "--distributed: this process's index",
    "sweep": "--sweep.parallel=N trials at once; --sweep.index=N runs only trial N (one job "
    "of a job array); --sweep.dry_run=true lists the trials (a search: its space and study); "
    "--sweep.backend=local|ray (--sweep.ray_address, --sweep.cpus_per_trial, "
    "--sweep.gpus_per_trial). Search (get_search(), study in WORKDIR/study.db, re-running "
    "continues it): --sweep.search=grid|random|tpe (default grid: get_sweep()), "
    "--sweep.num_trials=N (the study's total, required with a search), --sweep.metric=NAME "
    "(default: train.best_metric, in its family's direction), --sweep.prune=none|median "
    "(--sweep.prune_startup=K trials finish first, default 5), --sweep.seed=S (the sampler's; "
    "default: the config's seed). Local GPUs: each running trial gets its own through "
    "CUDA_VISIBLE_DEVICES: --sweep.devices=0,1,2,3 (default: CUDA_VISIBLE_DEVICES, else "
    "nvidia-smi -L; none: leave the environment alone), --sweep.devices_per_trial=K (default: "
    "an even share); trials that must share a GPU get XLA_PYTHON_CLIENT_MEM_FRACTION = 0.9 / "
    "trials per GPU",
    "metric": "the metric that ranks the variants (default: the runs' train.best_metric)",
    "out": "the report directory (default: <first DIR>/report)",
    "facet": "the field whose values the figures draw in separate panels (default: the "
    "family's, e.g. model.decoder, when the variants differ in it)",
    "input": "a file with one source per line (- = stdin)",
    "output": "where the predictions go (- = stdout)",
    "heatmaps": "draw one attention map per input into this directory",
    "beam_size": "beam size (default: the run's eval.beam_size)",
    "max_len": "most output tokens (0: 2 x source + 10)",
    "verbose": "show the traceback of an error",
}


def _help(command: str | None) -> str:
    import textwrap

    def wrapped(text: str, indent: str) -> list[str]:
        return textwrap.wrap(
            text, 96, initial_indent=indent, subsequent_indent=" " * 11, break_on_hyphens=False
        )

    if command is None:
        lines = [USAGE, "", "subcommands:"]
        for name, (text, _, _) in COMMANDS.items():
            lines += wrapped(text, f"  {name:8s} ")
        lines += ["", "python -m attnlab SUBCOMMAND --help lists its flags."]
        return "\n".join(lines) + "\n"
    text, positional, flag_names = COMMANDS[command]
    lines = [f"usage: python -m attnlab {command} {positional} [flags]".replace("  ", " "), ""]
    lines += textwrap.wrap(text, 96) + ["", "flags:"]
    for name in flag_names:
        need = " (required)" if name in REQUIRED.get(command, ()) else ""
        lines += textwrap.wrap(
            FLAG_HELP[name],
            96,
            initial_indent=f"  --{name}{need}: ",
            subsequent_indent="      ",
            break_on_hyphens=False,  # nvidia-smi, not nvidia- smi
        )
    return "\n".join(lines) + "\n"


def _define_flags(command: str, flag_values, argv: list[str]) -> None:
    """Defines the absl flags of `command` only, on `flag_values` (a fresh `FlagValues` per
    call, so that `main` can run many times in one process); an unknown flag is then one line
    and exit 2. `argv` holds the `--config.*` / `--sweep.*` overrides to define."""
    import ml_collections
    from absl import flags
    from ml_collections import config_flags

    names = COMMANDS[command][2]
    on = {"flag_values": flag_values}
    config_on = dict(on, sys_argv=argv)
    if "config" in names:
        config_flags.DEFINE_config_file("config", None, FLAG_HELP["config"], **config_on)
    for name in ("workdir", "coordinator_address", "heatmaps", "out", "metric", "facet"):
        if name in names:
            flags.DEFINE_string(name, None, FLAG_HELP[name], **on)
    for name, default in (("input", "-"), ("output", "-")):
        if name in names:
            flags.DEFINE_string(name, default, FLAG_HELP[name], **on)
    for name in ("force", "distributed", "verbose"):
        if name in names:
            flags.DEFINE_bool(name, False, FLAG_HELP[name], **on)
    integers = {"num_processes": None, "process_id": None, "beam_size": None, "max_len": 0}
    for name, default in integers.items():
        if name in names:
            flags.DEFINE_integer(name, default, FLAG_HELP[name], **on)
    if "sweep" in names:
        sweep = ml_collections.ConfigDict(SWEEP_DEFAULTS)
        config_flags.DEFINE_config_dict("sweep", sweep, FLAG_HELP["sweep"], **config_on)


class _Cli:
    """The parsed flags of one subcommand and what it runs."""

    def __init__(self, command: str, flag_values):
        self.command, self.flags = command, flag_values

    def value(self, name: str):
        return self.flags[name].value if name in self.flags else None

    def config(self):
        """The config with its overrides (as `--config` and `--config.*` gave them)."""
        return self.flags["config"].value

    def config_path(self) -> str:
        from ml_collections import config_flags

        return config_flags.get_config_filename(self.flags["config"])

    def overrides(self) -> dict:
        from ml_collections import config_flags

        from attnlab.config_lib import flatten

        return flatten(config_flags.get_override_values(self.flags["config"]))


def _train(cli: _Cli) -> int:
    if cli.value("distributed"):
        _initialize_distributed(cli)
    from attnlab import runner

    summary = runner.train_and_evaluate(cli.config(), cli.value("workdir"), cli.value("force"))
    seeds = summary.get("per_seed", [summary])  # several seeds: each seed's final metrics
    for k, results in enumerate(seeds):
        prefix = f"seed {cli.config().seed + k}: " if len(seeds) > 1 else ""
        keys = sorted(n for n in results if n.startswith(("eval", "test")))
        print("\n".join(f"{prefix}{n}: {results[n]:.4f}" for n in keys if _is_number(results[n])))
    return 0


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _initialize_distributed(cli: _Cli) -> None:
    """Joins the other processes of a multi-host run (before any JAX computation)."""
    import jax

    # CPU processes need a cross-process collectives implementation; GPUs and TPUs ignore this.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=cli.value("coordinator_address"),
        num_processes=cli.value("num_processes"),
        process_id=cli.value("process_id"),
    )


def _config(cli: _Cli) -> int:
    from attnlab import families

    config = cli.config()
    families.validate(config)
    print(config, end="")
    return 0


def _sweep(cli: _Cli) -> int:
    from attnlab import backends, sweep
    from attnlab.config_lib import ConfigError

    path, common, options = cli.config_path(), cli.overrides(), cli.value("sweep")
    if options.search != "grid":
        return _search(cli, path, common, options)
    searched = {"num_trials": 0, "metric": "", "prune": "none", "seed": -1}
    wrong = [f"--sweep.{k}" for k, v in searched.items() if options[k] != v]
    if wrong:
        raise ConfigError(
            f"{', '.join(wrong)} only apply to a searched sweep (--sweep.search=random|tpe)"
        )
    trials = sweep.load_sweep(path)
    if options.dry_run:
        for t in trials:
            print(f"{t.index:4d}  {t.name}  {dict(common, **t.overrides)}")
        return 0
    index = options.index if options.index >= 0 else None
    backend = backends.make_backend(
        options.backend,
        options.parallel,
        devices=options.devices,
        devices_per_trial=options.devices_per_trial,
        address=options.ray_address or None,
        cpus_per_trial=options.cpus_per_trial,
        gpus_per_trial=options.gpus_per_trial,
    )
    bar, progress = _sweep_progress(1 if index is not None else len(trials))
    try:
        with bar:
            trials = sweep.run_sweep(
                path,
                cli.value("workdir"),
                index=index,
                on_done=progress,
                common_overrides=common,
                backend=backend,
            )
    finally:
        getattr(backend, "shutdown", lambda: None)()
    failed = [t for t in trials if t.status == "failed"]
    print(
        f"{len(trials) - len(failed)} of {len(trials)} trials completed; status in "
        f"{os.path.join(cli.value('workdir'), sweep.STATUS_FILE)}"
    )
    return 1 if failed else 0


def _sweep_progress(total: int):
    """The sweep's progress bar and its `on_done(trial, trials)`."""
    from attnlab.progress import Progress

    bar = Progress(total, label="sweep")

    def progress(trial, all_trials):
        count = {s: sum(t.status == s for t in all_trials) for s in ("completed", "failed")}
        pruned = sum(t.status == "pruned" for t in all_trials)
        if trial.status == "failed":  # failures are always reported, terminal or not
            print(f"\nfailed: {trial.name}: {trial.error}", file=sys.stderr, flush=True)
        finished = count["completed"] + count["failed"] + pruned
        fields = {"done": count["completed"], "failed": count["failed"]}
        if pruned:
            fields["pruned"] = pruned
        bar.update(finished, force=True, **fields, left=total - finished, last=trial.name)

    return bar, progress


def _search(cli: _Cli, path: str, common: dict, options) -> int:
    """A searched sweep (`attnlab.search`): Optuna asks for the trials of get_search()."""
    from attnlab import backends, search, sweep
    from attnlab.config_lib import ConfigError

    if options.index >= 0:
        raise ConfigError("sweep.index picks one trial of a grid; a search asks for its trials")
    if options.backend != "local":
        raise ConfigError(
            "a searched sweep runs its trials on this machine (--sweep.backend=local); "
            "run a grid (get_sweep) on Ray"
        )
    settings = search.SearchOptions(
        sampler=options.search,
        num_trials=options.num_trials,
        metric=options.metric,
        prune=options.prune,
        prune_startup=options.prune_startup,
        seed=options.seed if options.seed >= 0 else None,
        parallel=options.parallel,
    )
    plan = search.plan_search(path, settings, common)
    workdir = cli.value("workdir")
    if options.dry_run:
        return _search_dry_run(plan, settings, workdir)
    backend = backends.LocalBackend(options.parallel, options.devices, options.devices_per_trial)
    bar, progress = _sweep_progress(settings.num_trials)
    with bar:
        trials = search.run_search(path, workdir, settings, common, backend, on_done=progress)
    count = {s: sum(t.status == s for t in trials) for s in ("completed", "pruned", "failed")}
    left = sum(t.status == "interrupted" for t in trials)
    print(
        f"{len(trials)} of {settings.num_trials} trials in the study: {count['completed']} "
        f"completed, {count['pruned']} pruned, {count['failed']} failed"
        + (f", {left} interrupted (re-run to resume them)" if left else "")
        + f"; status in {os.path.join(workdir, sweep.STATUS_FILE)}, study in "
        f"{os.path.join(workdir, search.STUDY_FILE)}"
    )
    direction = "higher" if plan.higher_is_better else "lower"
    for rank, t in enumerate(search.best_trials(trials, plan.higher_is_better), 1):
        print(f"{'best' if rank == 1 else f'#{rank}':>5}  {plan.metric}={t.value:.4f}  {t.name}")
    if count["completed"]:
        top = search.best_trials(trials, plan.higher_is_better, k=len(trials))
        tied = sum(t.value == top[0].value for t in top)
        share = f"; {tied} trials share the best value" if tied > 1 else ""
        print(f"({plan.metric}: {direction} is better{share})")
    figure = search.plot(workdir)
    if figure:
        print(f"figure: {figure}")
    return 1 if count["failed"] or left else 0


def _search_dry_run(plan, settings, workdir: str) -> int:
    """Prints the space, the objective and what the study holds so far; runs nothing."""
    import collections

    from attnlab import search

    for key, spec in plan.space.items():
        print(f"search  {key}: {spec!r}")
    for key, value in plan.fixed.items():
        print(f"fixed   {key}: {value!r}")
    direction = "maximize" if plan.higher_is_better else "minimize"
    print(f"{settings.sampler}, {settings.num_trials} trials, {direction} {plan.metric}")
    try:
        study = search.load_study(workdir)
    except FileNotFoundError:
        print("no study yet")
        return 0
    states = collections.Counter(t.state.name.lower() for t in study.get_trials(deepcopy=False))
    print(f"study: {dict(states)}")
    return 0


def _predict(cli: _Cli) -> int:
    from attnlab import predict
    from attnlab.config_lib import ConfigError

    workdir, beam_size, max_len = cli.value("workdir"), cli.value("beam_size"), cli.value("max_len")
    if beam_size is not None and beam_size < 1:  # checked before the model is loaded
        raise ConfigError(f"--beam_size={beam_size} is invalid: must be >= 1")
    if max_len < 0:
        raise ConfigError(f"--max_len={max_len} is invalid: must be >= 0 (0: 2 x source + 10)")
    source = cli.value("input")
    lines = None if source == "-" else _read_lines(source)  # a bad file: before the model loads
    predictor = predict.Predictor(workdir, beam_size=beam_size)
    if lines is None:  # stdin: once the run is known to be usable
        lines = _read_lines(source)
    results = predictor.predict(lines, max_len=max_len)
    text = "".join(r.text + "\n" for r in results)
    if cli.value("output") == "-":
        sys.stdout.write(text)
    else:
        with open(cli.value("output"), "w") as f:
            f.write(text)
    heatmaps = cli.value("heatmaps")
    if heatmaps:
        os.makedirs(heatmaps, exist_ok=True)
        for i, r in enumerate(results):
            if r.source:
                predict.draw(r, os.path.join(heatmaps, f"input_{i:04d}.png"), " ".join(r.source))
    unknown = sum(r.unknown for r in results)
    empty = sum(not r.source for r in results)
    cut = sum(r.cut > 0 for r in results)
    print(
        f"{len(results)} inputs (checkpoint step {predictor.step}, beam {predictor.beam_size}); "
        f"{unknown} unknown source tokens mapped to <unk>; {empty} empty lines; {cut} lines cut "
        f"to the longest source the model takes ({predictor.max_source_len} tokens)",
        file=sys.stderr,
    )
    return 0


def _read_lines(source: str) -> list[str]:
    """The input lines of `predict` (`-`: stdin); not a readable UTF-8 text file is a
    `ConfigError` (one line)."""
    from attnlab.config_lib import ConfigError

    try:
        if source == "-":
            return sys.stdin.read().splitlines()
        if os.path.isdir(source):
            raise ConfigError(f"--input={source} is a directory; give a text file, one per line")
        with open(source, encoding="utf-8") as f:
            return f.read().splitlines()
    except UnicodeDecodeError as err:
        raise ConfigError(f"--input={source} is not UTF-8 text ({err.reason})") from err
    except OSError as err:
        raise ConfigError(f"--input={source} cannot be read ({err.strerror})") from err


def _compare(cli: _Cli, directories: list[str]) -> int:
    from attnlab import compare

    table = compare.compare(
        directories, cli.value("out"), best_metric=cli.value("metric"), facet=cli.value("facet")
    )
    print(table, end="")
    return 0


def _usage_error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _config_spec(argv: list[str]) -> str | None:
    """The value of `--config=SPEC` (or `--config SPEC`) in `argv`, if any."""
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def _check_config_file(argv: list[str]) -> str | None:
    """Loads the config file named by `--config` once before the flag parser does, so that a
    missing file, an unknown argument after the colon, or a file that fails as it runs is one
    line (returned), never a traceback."""
    spec = _config_spec(argv)
    if spec is None:
        return None
    from attnlab.config_lib import ConfigError, load_config

    try:
        load_config(spec)
    except ConfigError as err:
        return str(err)
    except Exception as err:  # the file's own code failed
        return f"config file '{spec.partition(':')[0]}' failed: {type(err).__name__}: {err}"
    return None


def _parse(command: str, argv: list[str]):
    """absl's parser for `command`'s flags; a bad flag, an unknown config field or a config
    file that cannot be loaded is one line and `None`."""
    from absl import flags

    problem = _check_config_file(argv)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return None
    flag_values = flags.FlagValues()
    argv = [f"attnlab {command}", *argv]
    _define_flags(command, flag_values, argv)
    try:
        rest = flag_values(argv)[1:]
        if "config" in flag_values:
            flag_values["config"].value  # noqa: B018  (applies the overrides: errors surface here)
    except flags.Error as err:
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        return None
    except AttributeError as err:  # ml_collections: a field that does not exist
        detail = err.args[0] if err.args else err
        detail = detail.args[0] if isinstance(detail, KeyError) and detail.args else detail
        detail = " ".join(str(detail).split())
        from attnlab.config_lib import RENAMED

        for old, new in RENAMED.items():
            if any(a.split("=", 1)[0] == f"--config.{old}" for a in argv):
                detail += f"; config.{old} is now config.{new}"
        print(f"error: unknown config field {detail}", file=sys.stderr)
        return None
    except (ValueError, TypeError) as err:  # a value of the wrong type for its field
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return None
    return _Cli(command, flag_values), rest


def main(argv: list[str] | None = None) -> int:
    """Runs `python -m attnlab argv...`; returns the exit code (2: bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        return _usage_error(f"no subcommand; {USAGE}")
    command, rest = argv[0], argv[1:]
    if command in ("-h", "--help", "help"):
        sys.stdout.write(_help(None))
        return 0
    if command not in COMMANDS:
        return _usage_error(f"unknown subcommand '{command}'; {USAGE}")
    if any(a in ("-h", "--help", "--helpfull", "-?") for a in rest):
        sys.stdout.write(_help(command))
        return 0
    parsed = _parse(command, rest)
    if parsed is None:
        return 2
    cli, positional = parsed
    for name in REQUIRED.get(command, ()):
        if cli.value(name) is None:
            return _usage_error(f"{command} needs --{name}; python -m attnlab {command} --help")
    if command == "compare" and not positional:
        return _usage_error("compare needs at least one DIR; python -m attnlab compare --help")
    if command != "compare" and positional:
        return _usage_error(f"unexpected argument(s) {' '.join(positional)} for {command}")
    return _run(cli, positional)


def _run(cli: _Cli, positional: list[str]) -> int:
    """Runs the subcommand; expected errors are one line with their exit code."""
    from absl import flags, logging

    from attnlab.config_lib import ConfigError
    from attnlab.progress import QuietLibraries

    if not flags.FLAGS.is_parsed():  # absl logging's own flags keep their defaults
        flags.FLAGS.mark_as_parsed()
    logging.use_absl_handler()
    logging.set_verbosity(logging.INFO)
    logging.get_absl_handler().addFilter(QuietLibraries())
    expected: tuple = (ConfigError, FileNotFoundError)
    try:
        if cli.command == "config":
            return _config(cli)
        if cli.command == "compare":
            return _compare(cli, positional)
        if cli.command == "sweep":
            return _sweep(cli)
        from attnlab.checkpoints import CheckpointError
        from attnlab.runner import (
            NonFiniteLossError,
            ResourceError,
            TrainingInterrupted,
            resource_failure,
        )

        expected = (ConfigError, FileNotFoundError, CheckpointError)
        try:
            return _train(cli) if cli.command == "train" else _predict(cli)
        except (NonFiniteLossError, ResourceError) as err:
            return _report(cli, err, 1)
        except TrainingInterrupted as err:
            return _report(cli, err, 128 + err.signum)
        except expected:
            raise
        except Exception as err:  # out of memory or disk outside the guarded loop
            resource = resource_failure(err)
            if resource is None:
                raise
            return _report(cli, err, 1, resource)
    except expected as err:
        return _report(cli, err, 2)


def _report(cli: _Cli, err: Exception, code: int, message: str | None = None) -> int:
    """One readable line for an expected error (the traceback too with --verbose)."""
    if cli.value("verbose"):
        import traceback

        traceback.print_exception(err)
    text = " ".join(str(message or err).split())  # one line, whatever the message holds
    print(f"error: {text}", file=sys.stderr)
    return code


def run() -> None:
    """Console-script entry point (`attnlab train ...`)."""
    sys.exit(main())


if __name__ == "__main__":
    run()
