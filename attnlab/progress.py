"""The progress display: a `tqdm` bar (count, percent, elapsed < remaining, rate, fields).

On a terminal it is drawn on stderr; in a Jupyter notebook `tqdm.auto` draws a widget (with
`ipywidgets` installed; without it, the same text bar as on a terminal, redrawn in place); in
logs and CI (stderr not a terminal) it stays silent: the JSONL log is the record, this is only a
view. While a bar is shown, log lines (absl and Python logging to stderr) are written above it
through `tqdm.write`, so a log line never runs into the bar.

`logs_shown()` makes attnlab's log lines (the CLI's `step 100: train/loss=...`) visible when
the runner is called from Python or a notebook, where nothing has set up logging.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import warnings

from absl import logging as absl_logging
from tqdm import TqdmWarning

with warnings.catch_warnings():
    # In a notebook without ipywidgets, tqdm.auto warns (naming a file of its own) and falls
    # back to the text bar: the fallback is what is wanted, the warning only noise.
    warnings.simplefilter("ignore", TqdmWarning)
    from tqdm.auto import tqdm

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _size() -> os.terminal_size:
    """The terminal's size, or 100 x 24 where it reports none: a bare pseudo-terminal reports
    0 x 0, and tqdm hides a bar outside 0 rows."""
    size = shutil.get_terminal_size(fallback=(100, 24))
    return os.terminal_size((size.columns or 100, size.lines or 24))


def _in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (the test tqdm.auto makes): not merely one that
    imported ipykernel, as notebook tooling does."""
    ipython = sys.modules.get("IPython")
    if ipython is None or "ipykernel" not in sys.modules:
        return False
    shell = ipython.get_ipython()
    return shell is not None and "IPKernelApp" in shell.config


def _format(value) -> str:
    if not isinstance(value, float):
        return str(value)
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


class _AboveBar:
    """A stream for log handlers that writes each line with `tqdm.write` (above the bars)."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.rstrip("\n")
        if text:
            tqdm.write(text, file=self.stream)

    def flush(self) -> None:
        self.stream.flush()


@contextlib.contextmanager
def logs_above_bar(stream):
    """Within the block, every logging handler of the root and absl loggers that writes to
    `stream` (absl's own handler included) writes through `tqdm.write` instead."""
    handlers = []
    for logger in (logging.getLogger(), absl_logging.get_absl_logger()):  # see `logs_shown`
        for handler in logger.handlers:
            target = getattr(handler, "python_handler", handler)  # absl wraps a StreamHandler
            if getattr(target, "stream", None) is stream:
                handlers.append(target)
    for handler in handlers:
        handler.setStream(_AboveBar(stream))
    try:
        yield
    finally:
        for handler in handlers:
            handler.setStream(stream)


class QuietLibraries:
    """A logging filter: keeps attnlab's progress lines and every warning; drops other
    libraries' INFO chatter and the tracebacks of their warnings and errors (attnlab's own
    error line says what failed; the command line's `--verbose` shows its traceback)."""

    def filter(self, record) -> bool:
        if record.pathname.startswith(PACKAGE_DIR):
            return True
        if record.levelno >= logging.WARNING and record.exc_info:  # one line, no traceback
            record.exc_info, record.exc_text = None, None
        return record.levelno >= logging.WARNING


@contextlib.contextmanager
def logs_shown(stream=None):
    """Within the block, attnlab's INFO lines and the warnings logged through absl are written
    to `stream` (default: `sys.stderr` at entry) as `I 12:00:01 step 100: train/loss=...`,
    when nothing would show them otherwise: called from Python or a notebook, absl logs only
    warnings (through Python's `logging.basicConfig` format). Where absl already logs INFO (the
    command line sets it up; so may the user), nothing changes. Other loggers are untouched.
    """
    absl_logger = absl_logging.get_absl_logger()  # attnlab logs through absl
    if absl_logger.getEffectiveLevel() <= logging.INFO:
        yield
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname).1s %(asctime)s %(message)s", "%H:%M:%S"))
    handler.addFilter(QuietLibraries())
    level, propagate = absl_logger.level, absl_logger.propagate
    absl_logger.addHandler(handler)
    absl_logger.setLevel(logging.INFO)
    absl_logger.propagate = False  # the root logger's handler would print each line again
    try:
        yield
    finally:
        absl_logger.setLevel(level)
        absl_logger.propagate = propagate
        absl_logger.removeHandler(handler)


class Progress:
    """`update(count, **fields)` moves the bar to `count` and shows the fields.

    `count` is positional-only, so any field name (`done=`, `failed=`) may be shown.
    `enabled`: None draws on a terminal or in a notebook only. Use as a context manager (or
    call `close()`); inside it, log lines go above the bar.
    """

    def __init__(
        self,
        total: int,
        start: int = 0,
        label: str = "",
        stream=None,
        enabled: bool | None = None,
        interval: float = 0.2,
    ):
        self.stream = stream or sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", lambda: False)
            enabled = _in_notebook() or isatty()
        self.enabled = enabled
        self._bar = tqdm(
            total=total,
            initial=start,
            desc=label,
            file=self.stream,
            disable=not enabled,
            mininterval=interval,
            ncols=_size().columns,
            nrows=_size().lines,
            leave=True,
            bar_format="{desc} {n}/{total} [{percentage:3.0f}%] {elapsed}<{remaining}{postfix}",
        )
        self._redirect = contextlib.ExitStack()
        if enabled:
            self._redirect.enter_context(logs_above_bar(self.stream))

    def line(self, count: int, /, **fields) -> str:
        """The text the bar shows for `count` items."""
        self._bar.n = count
        self._bar.set_postfix_str(_postfix(fields), refresh=False)
        return str(self._bar)

    def update(self, count: int, /, force: bool = False, **fields) -> None:
        if not self.enabled:
            return
        self._bar.set_postfix_str(_postfix(fields), refresh=False)
        self._bar.update(count - self._bar.n)
        if force:
            self._bar.refresh()

    def close(self) -> None:
        """Ends the bar (the last state stays on screen) and restores the log handlers."""
        self._bar.close()
        self._redirect.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _postfix(fields: dict) -> str:
    return " ".join(f"{k}={_format(v)}" for k, v in fields.items())
