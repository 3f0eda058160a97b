"""Speed benchmark: train and greedy-decode a fixed model for every score x decoder order, and
how the training rate scales with batch and hidden size.

    python scripts/bench.py                          # all scores x both orders (~15 min, 2 cores)
    python scripts/bench.py --scores=additive --decoders=luong --steps=100
    python scripts/bench.py --scores=general,additive --decoders=luong --steps=50 \\
        --batch-sizes=8,32,128,512 --hidden-sizes=64,128,256,512 --out=runs/bench_scaling

Fixed model (the one the README reports): bidirectional GRU encoder (hidden 128, embedding 64),
GRU decoder hidden 128, batch 64, `reverse` with lengths 5-30. Scores that need equal query and
key sizes (dot, scaled_dot, concat_shared) run with decoder hidden 256 (= the bidirectional key
size) and are marked so. Columns:
- train tok/s: real target tokens (end token included) per second of training steps, after
  every program has been compiled.
- decode sent/s: validation sentences per second of greedy decoding (batch 64, or
  `--decode-batch`; to the end token or the target's padded length), after compilation.
- compile s: seconds compiling the train programs (one per length bucket) + the decoder.
- train MiB: XLA's peak buffer size of the largest train program (arguments + temporaries).
- GFLOP/s and % peak: the train programs' FLOPs (XLA's cost analysis) per second of training,
  and that rate as a fraction of this machine's float32 matmul peak (a 2048 x 2048 matmul in a
  loop, measured at the start).

`--batch-sizes` / `--hidden-sizes` add the scaling rows (train only): batch sizes at hidden 128,
and hidden sizes (encoder per direction, decoder and attention) at batch 64. `--out` writes
`results.json` (rows and the machine) and `table.md`, so a run on another host (a GPU, a TPU)
gives comparable numbers with no edits. `--unroll` and `--dtype` set `model.unroll` and
`model.dtype`.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import time

import jax
import jax.numpy as jnp

from attnlab import models, runner, train
from attnlab.config import default_config, validate
from attnlab.data.pipeline import get_datasets
from attnlab.devices import Compiled
from attnlab.scores import SCORE_NAMES, needs_equal_sizes


def bench_config(
    score: str,
    decoder: str,
    decode_batch: int = 64,
    batch: int = 64,
    hidden: int | None = None,
    unroll: int = 1,
    dtype: str = "float32",
):
    """The benchmark's config; `hidden` (None: the fixed model) sets every state size."""
    c = default_config()
    c.data.name, c.data.min_len, c.data.max_len = "reverse", 5, 30
    c.data.num_long, c.data.num_train, c.data.num_valid = 0, 12800, 1024
    c.data.batch_size, c.data.eval_batch_size, c.data.bucket_step = batch, decode_batch, 16
    c.model.embed_dim, c.model.encoder.hidden_dim = 64, 128
    c.model.decoder, c.model.score = decoder, score
    c.model.decoder_hidden_dim = 256 if needs_equal_sizes(score) else 128
    if hidden is not None:
        c.model.encoder.hidden_dim = c.model.attention.attn_dim = hidden
        c.model.decoder_hidden_dim = 2 * hidden if needs_equal_sizes(score) else hidden
    c.model.unroll, c.model.dtype = unroll, dtype
    validate(c)
    return c


def peak_mib(compiled) -> float:
    m = compiled.memory_analysis()
    return (m.argument_size_in_bytes + m.temp_size_in_bytes + m.output_size_in_bytes) / 2**20


def program_flops(compiled) -> float:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", 0.0))


def matmul_peak_gflops(n: int = 2048, repeats: int = 10) -> float:
    """This machine's float32 matmul rate: the best of `repeats` timed `[n, n] @ [n, n]`."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    jax.block_until_ready(f(a))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(f(a))
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def bench_one(score: str, decoder: str, steps: int, decode: bool = True, **config_args) -> dict:
    c = bench_config(score, decoder, **config_args)
    data = get_datasets(c.data, c.seed)
    model = models.build_model(c, data.src_vocab.size, data.tgt_vocab.size)
    tx, _ = runner.create_optimizer(c.optim, steps)
    state = runner.create_train_state(functools.partial(models.init_params, model), tx, c.seed)
    loss = train.make_loss(model, c.model.reinforce)
    step_fn = Compiled(runner.make_train_step(loss, tx), donate_argnums=(0,))
    gen_fn = Compiled(train.make_generate_step(model))
    batches = [data.train.batch(i) for i in range(steps)]
    for b in {(b["src"].shape, b["tgt_in"].shape): b for b in batches}.values():
        state, _ = step_fn(state, b)  # compile every train bucket first
    flops = {key: program_flops(p) for key, p in step_fn.programs.items()}
    key = lambda b: tuple((x.shape, x.dtype) for x in jax.tree.leaves((state, b)))
    eval_batches = data.eval["validation"] if decode else []
    for b in eval_batches:  # and every decode bucket
        jax.block_until_ready(gen_fn(state.params, b))
    start = time.perf_counter()
    for b in batches:
        state, sums = step_fn(state, b)
    jax.block_until_ready(state)
    train_s = time.perf_counter() - start
    tokens = sum(float(b["tgt_len"].sum()) for b in batches)
    work = sum(flops[key(b)] for b in batches)
    row = {
        "score": score + (" (dec 2x)" if needs_equal_sizes(score) else ""),
        "decoder": decoder,
        "batch": c.data.batch_size,
        "hidden": c.model.encoder.hidden_dim,
        "train tok/s": tokens / train_s,
        "train GFLOP/s": work / train_s / 1e9,
        "compile s": step_fn.compile_seconds + gen_fn.compile_seconds,
        "train MiB": max(peak_mib(p) for p in step_fn.programs.values()),
    }
    if decode:
        start = time.perf_counter()
        for b in eval_batches:
            jax.block_until_ready(gen_fn(state.params, b))
        sentences = sum(int((b["tgt_len"] > 0).sum()) for b in eval_batches)
        row["decode sent/s"] = sentences / (time.perf_counter() - start)
    return row


COLUMNS = (
    ("batch", "{:d}"),
    ("hidden", "{:d}"),
    ("train tok/s", "{:,.0f}"),
    ("decode sent/s", "{:,.0f}"),
    ("train GFLOP/s", "{:.1f}"),
    ("% peak", "{:.1f}"),
    ("compile s", "{:.1f}"),
    ("train MiB", "{:.1f}"),
)


def format_row(row: dict) -> str:
    cells = [row["score"], row["decoder"]]
    cells += [fmt.format(row[k]) if k in row else "–" for k, fmt in COLUMNS]
    return "| " + " | ".join(cells) + " |"


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scores", default=",".join(SCORE_NAMES))
    parser.add_argument("--decoders", default="bahdanau,luong")
    parser.add_argument("--steps", type=int, default=200, help="timed train steps per config")
    parser.add_argument("--decode-batch", type=int, default=64, help="greedy decoding batch size")
    parser.add_argument("--batch-sizes", default="", help="scaling rows: train batch sizes")
    parser.add_argument("--hidden-sizes", default="", help="scaling rows: state sizes")
    parser.add_argument("--unroll", type=int, default=1, help="model.unroll")
    parser.add_argument("--dtype", default="float32", help="model.dtype")
    parser.add_argument("--out", default="", help="directory for results.json and table.md")
    args = parser.parse_args()
    device = jax.devices()[0]
    peak = matmul_peak_gflops()
    machine = {
        "jax": jax.__version__,
        "platform": device.platform,
        "device": device.device_kind,
        "devices": jax.device_count(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "matmul peak GFLOP/s": peak,
        "steps": args.steps,
        "decode batch": args.decode_batch,
        "unroll": args.unroll,
        "dtype": args.dtype,
    }
    print(
        f"jax {jax.__version__} on {device.platform} ({device.device_kind}), "
        f"{jax.device_count()} device(s), float32 matmul peak {peak:,.1f} GFLOP/s, "
        f"decode batch {args.decode_batch}, {args.steps} timed steps, unroll {args.unroll}, "
        f"{args.dtype}"
    )
    head = ["score", "decoder", *(k for k, _ in COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * len(COLUMNS)]
    print("\n".join(lines), flush=True)
    common = {"unroll": args.unroll, "dtype": args.dtype}
    jobs = []
    for decoder in args.decoders.split(","):
        for score in args.scores.split(","):
            jobs.append((score, decoder, True, {"decode_batch": args.decode_batch}))
            for b in filter(None, args.batch_sizes.split(",")):
                jobs.append((score, decoder, False, {"batch": int(b)}))
            for h in filter(None, args.hidden_sizes.split(",")):
                jobs.append((score, decoder, False, {"hidden": int(h)}))
    rows = []
    for score, decoder, decode, extra in jobs:
        row = bench_one(score, decoder, args.steps, decode, **common, **extra)
        row["% peak"] = 100 * row["train GFLOP/s"] / peak
        rows.append(row)
        lines.append(format_row(row))
        print(lines[-1], flush=True)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump({"machine": machine, "rows": rows}, f, indent=1)
        with open(os.path.join(args.out, "table.md"), "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
