"""attnlab: attention mechanisms for sequence-to-sequence models in JAX/Flax, and the
recurrent model of visual attention, with a runner that trains, resumes, sweeps and compares.

The public entry points; everything else is importable from its module (`attnlab.scores`,
`attnlab.decoders`, ...)::

    from attnlab import SCORES, build_model, default_config, load_run, train_and_evaluate

They are imported on first use, so `import attnlab` (and `python -m attnlab --help`) does not
start JAX. Importing `attnlab.data.builders` registers the TFDS datasets (`attnlab_g2p`,
`attnlab_dates`, `attnlab_digits_canvas`) with TFDS.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it
_PUBLIC = {
    "SCORES": "attnlab.scores",
    "build_score": "attnlab.scores",
    "build_model": "attnlab.models",
    "default_config": "attnlab.config",
    "load_config": "attnlab.config_lib",
    "load_run": "attnlab.saved_run",
    "load_runs": "attnlab.compare",
    "validate": "attnlab.families",
    "train_and_evaluate": "attnlab.runner",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'attnlab' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
