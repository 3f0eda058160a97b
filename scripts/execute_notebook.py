"""Runs a notebook of `examples/` top to bottom and saves it with its outputs, as committed.

    python scripts/execute_notebook.py examples/quickstart.ipynb

The kernel starts in the notebook's folder (as Jupyter starts it), each cell's stream outputs
are merged and their carriage returns applied (a progress bar keeps its last state, not every
redraw), no timing metadata is recorded, and the saved outputs are checked for absolute paths
of this machine (the repository's, the home folder's, the temporary folder's): a notebook that
prints one is not saved. `tests/test_notebook.py` runs the same `execute` on a tiny config.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import nbformat
from nbclient import NotebookClient

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def execute(path: str, inject: str | None = None, env: dict | None = None, timeout: int = 900):
    """The notebook at `path` run in a fresh kernel whose working directory is the notebook's
    folder; `inject`: source of a cell run right after the cell tagged `parameters` (as
    papermill does), to change its settings; `env`: the kernel's environment. Returns the
    executed `nbformat` notebook; a cell that fails raises `nbclient.exceptions.
    CellExecutionError` naming it."""
    nb = nbformat.read(path, as_version=4)
    if inject is not None:
        tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
        if not tagged:
            raise ValueError(f"{path} has no cell tagged 'parameters' to inject after")
        cell = nbformat.v4.new_code_cell(inject, metadata={"tags": ["injected-parameters"]})
        nb.cells.insert(tagged[0] + 1, cell)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}},
        coalesce_streams=True,
        record_timing=False,
    )
    client.execute(**({"env": env} if env is not None else {}))
    return nb


def machine_paths(nb) -> list[str]:
    """The outputs' lines that name an absolute path of this machine."""
    roots = {REPO, os.path.expanduser("~"), tempfile.gettempdir(), sys.prefix}
    found = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            texts = [output.get("text", "")]
            texts += [v for v in output.get("data", {}).values() if isinstance(v, str)]
            texts += output.get("traceback", [])
            for line in "\n".join(texts).splitlines():
                if any(root in line for root in roots if root and root != os.sep):
                    found.append(line.strip()[:200])
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", help="the .ipynb file; its outputs are replaced")
    args = parser.parse_args()
    nb = execute(args.notebook)
    leaks = machine_paths(nb)
    if leaks:
        print("not saved: the outputs name paths of this machine:", *leaks, sep="\n  ")
        return 1
    nbformat.write(nb, args.notebook)
    print(f"{args.notebook}: {os.path.getsize(args.notebook):,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
