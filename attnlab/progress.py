"""A one-line progress display (count, percent, elapsed < remaining, fields) for terminals.

Drawn on stderr with a carriage return, at most every `interval` seconds; silent when stderr is
not a terminal (logs and CI stay clean: the JSONL log is the record, this is only a view).
"""

from __future__ import annotations

import sys
import time


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """`update(count, **fields)` redraws `label count/total [pct] elapsed<eta key=value ...`.

    `count` is positional-only, so any field name (`done=`, `failed=`) may be shown.
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
        self.total, self.start, self.label = total, start, label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.interval = interval
        self._t0 = time.perf_counter()
        self._last_draw = -float("inf")
        self._width = 0

    def line(self, count: int, /, **fields) -> str:
        """The text of the display for `count` items (the ETA assumes a constant rate)."""
        elapsed = time.perf_counter() - self._t0
        rate = (count - self.start) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - count) / rate if rate > 0 else float("nan")
        pct = 100.0 * count / self.total if self.total else 100.0
        eta_text = _clock(eta) if eta == eta else "?"
        parts = [f"{self.label} {count}/{self.total} [{pct:3.0f}%] {_clock(elapsed)}<{eta_text}"]
        parts += [
            f"{k}={v:,.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items()
        ]
        return " ".join(p for p in parts if p).strip()

    def update(self, count: int, /, force: bool = False, **fields) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last_draw < self.interval and count < self.total:
            return
        self._last_draw = now
        text = self.line(count, **fields)
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)

    def close(self) -> None:
        """Ends the line (only if something was drawn)."""
        if self.enabled and self._width:
            self.stream.write("\n")
            self.stream.flush()
