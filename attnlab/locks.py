"""Exclusive locks on directories, so two processes never write one run or one sweep.

`flock` on a lock file: the operating system releases it when the holder exits or is killed, so
a crash never leaves a stale lock behind. The file names the holder (pid and host) for the
error message.
"""

from __future__ import annotations

import fcntl
import os
import socket

from attnlab.config_lib import ConfigError


class DirectoryLock:
    """`with DirectoryLock(directory, "run.lock", "training run"):` holds the directory or
    raises `ConfigError` naming the process that holds it."""

    def __init__(self, directory: str, filename: str, what: str, shared: bool = False):
        self.path = os.path.join(directory, filename)
        self.what = what
        self.shared = shared  # shared holders (jobs of one job array) exclude only exclusive ones
        self._file = None

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self._file = open(self.path, "a+")
        try:
            mode = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
            fcntl.flock(self._file, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.seek(0)
            holder = self._file.read().strip() or "another process"
            self._file.close()
            raise ConfigError(
                f"another {self.what} ({holder}) is running in {os.path.dirname(self.path)}; "
                "wait for it to finish or use another --workdir"
            ) from None
        if not self.shared:  # a shared holder leaves the exclusive holder's name alone
            self._file.seek(0)
            self._file.truncate()
            self._file.write(f"pid {os.getpid()} on {socket.gethostname()}")
            self._file.flush()
        return self

    def __exit__(self, *exc_info):
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()
