"""The cost of attention against source length: global scores, local and hard attention.

    python scripts/bench_cost.py                                   # S = 16 .. 1024, ~10 min
    python scripts/bench_cost.py --lengths=16,64,256 --variants=general,local_p --out=cost

For every variant and source length `S` (target length `T = S`, a `reverse`-shaped batch of
random symbols), with a fixed small model (bidirectional GRU 64 per direction, Luong-order GRU
decoder 64, or 128 for `dot`), it measures:
- train ms: one jitted train step (forward + backward + Adam), median over `--steps` steps;
- decode us/step: greedy decoding of the batch (one compiled while loop, up to `T + 1` steps,
  stopping when every row has ended), per step taken;
- train MiB: XLA's peak buffers of the train program (arguments + temporaries + outputs);
- step FLOPs: `cost_analysis()` of one compiled decoder step, which holds the attention: it
  grows with `S` for global attention (one score per source position) and with `D`, not `S`,
  for local attention.
Variants: any score name (global, soft attention), `local_m` / `local_p` (the `general` score
in a window of half-width `--window`), `hard` (one position sampled from the `general` scores:
still one score per position) and `hard_gaussian` (a position from a Gaussian location policy:
no scores). Hard variants train with REINFORCE (`model.reinforce` defaults). Writes
`table.md`, `results.json` and plots of each column against `S` (log-log) to `--out`.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from attnlab import models, plots, runner, train
from attnlab.config import default_config, validate
from attnlab.data.vocab import BOS_ID, EOS_ID
from attnlab.scores import needs_equal_sizes

LOCAL = ("local_m", "local_p")
HARD = {"hard": "categorical", "hard_gaussian": "gaussian"}


def model_config(variant: str, window: int):
    c = default_config()
    m = c.model
    m.embed_dim, m.encoder.hidden_dim, m.attention.attn_dim = 32, 64, 64
    m.decoder, m.decoder_hidden_dim = "luong", 64
    m.score = "general" if variant in LOCAL or variant in HARD else variant
    if variant in LOCAL:
        m.attention.kind, m.attention.window = variant, window
    if variant in HARD:
        m.attention.kind, m.attention.hard_policy = "hard", HARD[variant]
    if needs_equal_sizes(m.score):
        m.decoder_hidden_dim = 128
    m.attention.max_source_len = 4096
    validate(c)
    return c


def reverse_batch(batch: int, length: int, vocab: int, seed: int = 0) -> dict:
    """A full batch of `reverse` pairs of exactly `length` symbols (ids 4 .. vocab-1)."""
    rng = np.random.default_rng(seed)
    src = rng.integers(4, vocab, (batch, length)).astype(np.int32)
    tgt = src[:, ::-1]
    tgt_in = np.concatenate([np.full((batch, 1), BOS_ID, np.int32), tgt], axis=1)
    tgt_out = np.concatenate([tgt, np.full((batch, 1), EOS_ID, np.int32)], axis=1)
    return {
        "src": src,
        "src_len": np.full((batch,), length, np.int32),
        "tgt_in": tgt_in,
        "tgt_out": tgt_out,
        "tgt_len": np.full((batch,), length + 1, np.int32),
        "align": np.full((batch, length + 1), -1, np.int32),
    }


def step_flops(model, params, batch) -> float:
    """FLOPs of one compiled decoder step (the encoder's work is outside it)."""
    variables = {"params": params}
    enc = model.apply(variables, batch["src"][0], batch["src_len"][0], method="encode")
    carry = model.apply(variables, enc, method="initial_carry")

    def step(carry, token, enc):
        return model.apply(variables, carry, token, enc, method="decode_step")

    cost = jax.jit(step).lower(carry, jnp.int32(BOS_ID), enc).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost["flops"])


def bench_one(variant: str, length: int, batch_size: int, steps: int, window: int) -> dict:
    c = model_config(variant, window)
    vocab = 14
    model = models.build_model(c, vocab, vocab)
    tx, _ = runner.create_optimizer(c.optim, steps + 1)
    state = runner.create_train_state(functools.partial(models.init_params, model), tx, 0)
    batch = {k: jnp.asarray(v) for k, v in reverse_batch(batch_size, length, vocab).items()}
    train_step = runner.make_train_step(train.make_loss(model, c.model.reinforce), tx)
    train_fn = jax.jit(train_step, donate_argnums=(0,))
    compiled = train_fn.lower(state, batch).compile()
    memory = compiled.memory_analysis()
    mib = (memory.argument_size_in_bytes + memory.temp_size_in_bytes) / 2**20
    mib += memory.output_size_in_bytes / 2**20
    state, _ = compiled(state, batch)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        state, sums = compiled(state, batch)
        jax.block_until_ready(sums)
        times.append(time.perf_counter() - start)
    decode = jax.jit(lambda p, s, n: models.generate_batch(model, p, s, n, length + 1))
    jax.block_until_ready(decode(state.params, batch["src"], batch["src_len"]))
    start = time.perf_counter()
    _, _, lengths = jax.block_until_ready(decode(state.params, batch["src"], batch["src_len"]))
    decode_s = time.perf_counter() - start
    decoded_steps = max(int(lengths.max()), 1)  # the loop stops once every row has ended
    return {
        "variant": variant + (f" (D={window})" if variant in LOCAL else ""),
        "S": length,
        "train ms": 1e3 * statistics.median(times),
        "decode us/step": 1e6 * decode_s / decoded_steps,
        "train MiB": mib,
        "step FLOPs": step_flops(model, state.params, batch),
    }


COLUMNS = ("train ms", "decode us/step", "train MiB", "step FLOPs")


def write_report(rows: list[dict], out: str) -> list[str]:
    """Writes `table.md`, `results.json` and a log-log plot of each column against `S` to
    `out`; returns the table's lines."""
    head = ["variant", "S", *COLUMNS]
    table = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    table += [
        "| " + " | ".join([r["variant"], str(r["S"])] + [f"{r[c]:,.1f}" for c in COLUMNS]) + " |"
        for r in rows
    ]
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write("\n".join(table) + "\n")
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(rows, f, indent=1)
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    for column in COLUMNS:
        curves = {}
        for v in variants:
            mine = [r for r in rows if r["variant"] == v]
            curves[v] = ([r["S"] for r in mine], [r[column] for r in mine])
        name = column.replace(" ", "_").replace("/", "_per_").lower()
        plots.plot_curves(
            curves, os.path.join(out, f"{name}.png"), title=f"{column} vs source length",
            xlabel="source length S (= target length)", ylabel=column, log=True,
        )  # fmt: skip
    return table


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", default="16,32,64,128,256,512,1024")
    parser.add_argument("--variants", default="general,additive,dot,local_p,hard,hard_gaussian")
    parser.add_argument("--window", type=int, default=8, help="local attention half-width D")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", default="runs/bench_cost")
    parser.add_argument(
        "--append",
        action="store_true",
        help="keep the rows already in OUT/results.json (same variant and S: replaced)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="measure nothing: redraw OUT/table.md and the plots from OUT/results.json",
    )
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.report_only:
        with open(os.path.join(args.out, "results.json")) as f:
            print("\n".join(write_report(json.load(f), args.out)))
        return
    print(f"jax {jax.__version__} on {jax.default_backend()}, batch {args.batch}, T = S")
    rows = []
    results_path = os.path.join(args.out, "results.json")
    if args.append and os.path.exists(results_path):
        with open(results_path) as f:
            rows = json.load(f)
    for variant in args.variants.split(","):
        for length in (int(s) for s in args.lengths.split(",")):
            row = bench_one(variant, length, args.batch, args.steps, args.window)
            rows = [r for r in rows if (r["variant"], r["S"]) != (row["variant"], row["S"])]
            rows.append(row)
            print(" | ".join(f"{k}={v:,.1f}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in row.items()), flush=True)  # fmt: skip
    table = write_report(rows, args.out)
    print("\n".join(table))


if __name__ == "__main__":
    main()
