"""attnlab: attention mechanisms for sequence-to-sequence models in JAX/Flax.

The public entry points; everything else is importable from its module (`attnlab.scores`,
`attnlab.decoders`, ...)::

    from attnlab import SCORES, build_model, default_config, train_and_evaluate

Importing attnlab registers its TFDS datasets (`attnlab_g2p`, `attnlab_dates`), so
`tfds.builder("attnlab_g2p")` finds them.
"""

from attnlab import datasets  # noqa: F401  (registers the TFDS builders)
from attnlab.config import default_config, load_config, validate
from attnlab.models import build_model
from attnlab.scores import SCORES, build_score
from attnlab.train import train_and_evaluate

__version__ = "0.1.0"
__all__ = [
    "SCORES",
    "build_model",
    "build_score",
    "default_config",
    "load_config",
    "train_and_evaluate",
    "validate",
]
