"""The progress display: drawn on a terminal, silent otherwise, and log lines never run into it."""

import io
import logging
import os

from attnlab.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_draws_count_percent_and_fields_on_a_terminal():
    out = Terminal()
    with Progress(200, start=0, label="train", stream=out, interval=0.0) as bar:
        bar.update(50, loss=0.123456, note="x")
        bar.update(200, loss=0.01)
    text = out.getvalue()
    assert "train 50/200 [ 25%]" in text and "loss=0.1235 note=x" in text
    assert "train 200/200 [100%]" in text and text.endswith("\n")


def test_silent_when_not_a_terminal():
    out = io.StringIO()  # StringIO.isatty() is False
    with Progress(10, stream=out) as bar:
        bar.update(5, loss=1.0)
    assert out.getvalue() == ""


def test_silent_in_a_process_that_imported_ipykernel_but_is_no_kernel():
    import ipykernel  # noqa: F401  (notebook tooling imports it: running notebooks, tests)

    out = io.StringIO()
    with Progress(10, stream=out) as bar:
        bar.update(5, loss=1.0)
    assert out.getvalue() == ""


def test_fields_may_be_named_like_the_count():
    stream = Terminal()
    with Progress(3, label="sweep", stream=stream) as bar:
        bar.update(2, force=True, done=1, failed=1, left=1)  # the sweep's own fields
    assert "sweep 2/3" in stream.getvalue() and "done=1 failed=1 left=1" in stream.getvalue()


def test_log_lines_are_written_above_the_bar_and_the_handler_is_restored():
    stream = Terminal()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("LOG %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with Progress(100, label="train", stream=stream, interval=0.0) as bar:
            bar.update(10, loss=1.0)
            logging.getLogger("attnlab.test").warning("step 10: loss=1.0")
            bar.update(20, loss=0.5)
        assert handler.stream is stream  # restored after the bar
    finally:
        root.removeHandler(handler)
    lines = stream.getvalue().replace("\r", "\n").split("\n")
    logged = [line for line in lines if "LOG" in line]
    # The log line is a line of its own: the bar was cleared before it, never glued to it.
    assert logged == ["LOG step 10: loss=1.0"]


def test_draws_where_the_terminal_reports_no_size(monkeypatch):
    monkeypatch.setattr("shutil.get_terminal_size", lambda fallback=None: os.terminal_size((0, 0)))
    out = Terminal()
    with Progress(10, label="train", stream=out, interval=0.0) as bar:
        bar.update(5, loss=0.5)
    assert "train 5/10 [ 50%]" in out.getvalue()


def test_logs_shown_prints_attnlab_lines_once_and_restores_absl(monkeypatch):
    """Called from Python (absl logs only warnings, through the root logger): attnlab's INFO
    lines and every warning are shown, once each; other libraries' INFO is not."""
    from absl import logging as absl_logging

    from attnlab import progress

    absl_logger = absl_logging.get_absl_logger()
    monkeypatch.setattr(absl_logger, "level", logging.WARNING)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [logging.StreamHandler(io.StringIO())])  # basicConfig
    here = os.path.dirname(os.path.abspath(__file__)) + os.sep
    stream = io.StringIO()
    with progress.logs_shown(stream):
        absl_logging.info("other library's news")  # INFO from outside attnlab: dropped
        monkeypatch.setattr(progress, "PACKAGE_DIR", here)  # this file counts as attnlab's
        absl_logging.info("step 20: train/loss=0.5")
        absl_logging.warning("a warning")
    lines = [line.split(" ", 2) for line in stream.getvalue().splitlines()]
    assert [(level, text) for level, _, text in lines] == [
        ("I", "step 20: train/loss=0.5"),
        ("W", "a warning"),
    ]
    assert root.handlers[0].stream.getvalue() == ""  # not printed twice
    assert absl_logger.level == logging.WARNING and absl_logger.propagate
    assert not absl_logger.handlers
