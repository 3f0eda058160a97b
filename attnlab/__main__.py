"""Command line: `python -m attnlab train --config=configs/reverse.py --workdir=runs/reverse`.

The only module that defines flags. Any config field can be overridden with
`--config.<section>.<field>=value`; a config file may take an argument after a colon
(`--config=configs/reverse.py:quick`).
"""

from __future__ import annotations

import logging as py_logging
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from attnlab.config import ConfigError

COMMANDS = ("train",)
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    None,
    "Path to a config file, e.g. configs/reverse.py or configs/reverse.py:quick.",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for this run's outputs.")


class _QuietLibraries(py_logging.Filter):
    """Keeps attnlab's progress lines and every warning; drops other libraries' INFO chatter."""

    def filter(self, record: py_logging.LogRecord) -> bool:
        return record.levelno >= py_logging.WARNING or record.pathname.startswith(_PACKAGE_DIR)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in COMMANDS:
        raise app.UsageError(
            f"usage: python -m attnlab {{{','.join(COMMANDS)}}} --config=... --workdir=..."
        )
    if _CONFIG.value is None or _WORKDIR.value is None:
        raise app.UsageError("both --config and --workdir are required")
    from attnlab import train  # after flag parsing: keeps --help fast

    logging.get_absl_handler().addFilter(_QuietLibraries())
    try:
        summary = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except train.NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    keys = sorted(k for k in summary if k.startswith(("eval", "test")))
    logging.info("done: %s", {k: round(summary[k], 4) for k in keys})
    print("\n".join(f"{k}: {summary[k]:.4f}" for k in keys))
    return 0


def run() -> None:
    """Console-script entry point (`attnlab train ...`)."""
    app.run(main)


if __name__ == "__main__":
    run()
