"""What K seeds in one vmapped program cost, against K sequential single-seed runs.

    python scripts/bench_seeds.py                    # K = 1, 4, 8 on the reverse :quick model
    python scripts/bench_seeds.py --seeds=1,2,4,8,16 --steps=100 --config=configs/sort.py:quick

For each K: compile seconds of the K-seed train step, milliseconds per step (all K models
updated), and the ratio to K times the one-seed step (below 1: cheaper than running the seeds one
after another; the one-seed program is compiled once and reused by sequential runs, so compile
is reported apart). Batches are shared by the seeds, as with `seed_batches=shared`.
"""

from __future__ import annotations

import argparse
import functools
import time

import jax

from attnlab import devices, models, runner, train
from attnlab.config import validate
from attnlab.config_lib import load_config
from attnlab.data.pipeline import get_datasets


def time_steps(program, state, batches):
    state, _ = program(state, batches[0])  # compile + warm up
    jax.block_until_ready(state)
    start = time.perf_counter()
    for batch in batches[1:]:
        state, _ = program(state, batch)
    jax.block_until_ready(state)
    return (time.perf_counter() - start) / (len(batches) - 1)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="configs/reverse.py:quick")
    parser.add_argument("--seeds", default="1,4,8")
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    config = load_config(args.config)
    validate(config)
    data = get_datasets(config.data, config.seed)
    model = models.build_model(config, data.src_vocab.size, data.tgt_vocab.size)
    tx, _ = runner.create_optimizer(config.optim, config.train.num_steps)
    mesh = devices.make_mesh()
    batches = [devices.shard_batch(data.train.batch(i), mesh) for i in range(args.steps + 1)]
    step_fn = runner.make_train_step(train.make_loss(model), tx)
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}; {args.config}; "
        f"batch {config.data.batch_size}; {args.steps} timed steps"
    )
    print("| K | compile s | ms / step (K models) | ms / step / model | vs K sequential |")
    print("|---:|---:|---:|---:|---:|")
    base = None
    for k in [int(x) for x in args.seeds.split(",")]:
        init = functools.partial(models.init_params, model)
        state = devices.replicate(runner.create_train_states(init, tx, list(range(k))), mesh)
        program = devices.Compiled(jax.vmap(step_fn, in_axes=(0, None)), donate_argnums=(0,))
        seconds = time_steps(program, state, batches)
        base = seconds if k == 1 and base is None else base
        ratio = f"{seconds / (k * base):.2f}" if base else "–"
        print(
            f"| {k} | {program.compile_seconds:.1f} | {seconds * 1e3:.1f} | "
            f"{seconds * 1e3 / k:.1f} | {ratio} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
