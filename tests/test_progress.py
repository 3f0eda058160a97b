"""The progress display: drawn on a terminal, silent otherwise."""

import io

from attnlab.progress import Progress


def test_draws_count_percent_and_fields_when_enabled():
    out = io.StringIO()
    bar = Progress(200, start=0, label="train", stream=out, enabled=True, interval=0.0)
    bar.update(50, loss=0.123456, note="x")
    bar.update(200, loss=0.01)
    bar.close()
    text = out.getvalue()
    assert "train 50/200 [ 25%]" in text and "loss=0.1235" in text and "note=x" in text
    assert "train 200/200 [100%]" in text and text.endswith("\n")
    assert text.count("\r") == 2


def test_silent_when_not_a_terminal():
    out = io.StringIO()  # StringIO.isatty() is False
    bar = Progress(10, stream=out)
    bar.update(5, loss=1.0)
    bar.close()
    assert out.getvalue() == ""


def test_eta_comes_from_the_observed_rate():
    bar = Progress(100, start=40, stream=io.StringIO(), enabled=True)
    bar._t0 -= 10.0  # 20 items in 10 s since the start: 2/s, so 40 items left take 20 s
    assert "0:00:10<0:00:20" in bar.line(60)


def test_fields_may_be_named_like_the_count():
    stream = io.StringIO()
    bar = Progress(3, label="sweep", stream=stream, enabled=True)
    bar.update(2, force=True, done=1, failed=1, left=1)  # the sweep's own fields
    assert "sweep 2/3" in stream.getvalue() and "done=1 failed=1 left=1" in stream.getvalue()
