"""Metrics as sums plus denominators, computed on device and normalised on the host.

Batched functions return dicts of scalar *sums* (`loss_sum`, `tokens`, ...) so metrics over
padded batches and over many batches add up exactly (no mean-of-means bias); `normalize` turns
accumulated sums into the logged values. Shapes: `B` batch, `T` target steps (including the
end token), `S` source positions, `V` vocabulary.

Alignment metrics compare the attention weights `alpha [B, T, S]` with the gold source position
of each target step (`align [B, T]`, -1 where undefined):
- `align_accuracy`: fraction of gold steps whose `argmax_i alpha_ti` is the gold position.
- `aer`: Och & Ney's alignment error rate `1 - (|A∩S| + |A∩P|) / (|A| + |S|)` with `S = P` the
  gold links and `A` the argmax links at the gold steps. With exactly one link per step on both
  sides this equals `1 - align_accuracy`; it is logged under its own name so tasks with several
  gold links per step can report it too.
- `attention_entropy`: mean `H(alpha_t) / log S` over steps with at least two source positions
  (0 = all weight on one position, 1 = uniform).
- `cog_offset`: mean `|sum_i i alpha_ti - gold_t|`, the centre of gravity's distance to gold.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax


def _step_mask(tgt_len, num_steps):
    return jnp.arange(num_steps)[None, :] < tgt_len[:, None]


def token_sums(logits, tgt_out, tgt_len) -> dict:
    """Cross-entropy and accuracy sums over real target steps.

    `logits: [B, T, V]`, `tgt_out: [B, T]`, `tgt_len: [B]` -> `loss_sum`, `correct`, `tokens`.
    """
    mask = _step_mask(tgt_len, tgt_out.shape[1])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), tgt_out)
    correct = (jnp.argmax(logits, -1) == tgt_out) & mask
    return {
        "loss_sum": jnp.sum(jnp.where(mask, loss, 0.0)),
        "correct": jnp.sum(correct).astype(jnp.float32),
        "tokens": jnp.sum(mask).astype(jnp.float32),
    }


def alignment_sums(alpha, align, src_len, tgt_len) -> dict:
    """Alignment sums; `alpha: [B, T, S]`, `align: [B, T]` (-1 = no gold), lengths `[B]`."""
    steps = _step_mask(tgt_len, align.shape[1])
    gold = steps & (align >= 0)
    hit = (jnp.argmax(alpha, -1) == align) & gold
    positions = jnp.arange(alpha.shape[-1], dtype=jnp.float32)
    centre = jnp.sum(alpha * positions, -1)
    plogp = jnp.where(alpha > 0, alpha * jnp.log(jnp.where(alpha > 0, alpha, 1.0)), 0.0)
    log_s = jnp.log(jnp.maximum(src_len, 2).astype(jnp.float32))[:, None]
    has_choice = steps & (src_len[:, None] > 1)
    return {
        "align_hit": jnp.sum(hit).astype(jnp.float32),
        "align_gold": jnp.sum(gold).astype(jnp.float32),
        "cog_sum": jnp.sum(jnp.where(gold, jnp.abs(centre - align), 0.0)),
        "entropy_sum": jnp.sum(jnp.where(has_choice, -jnp.sum(plogp, -1) / log_s, 0.0)),
        "entropy_steps": jnp.sum(has_choice).astype(jnp.float32),
    }


def sequence_correct(tokens, tgt_out, tgt_len) -> jnp.ndarray:
    """`[B]` bool: the generated `tokens: [B, L]` (PAD after the end token) equal `tgt_out`
    (end token included) with nothing after it. Rows with `tgt_len == 0` (filler) are False."""
    length = max(tokens.shape[1], tgt_out.shape[1])
    pad = lambda x: jnp.pad(x, ((0, 0), (0, length - x.shape[1])))
    ref = jnp.where(_step_mask(tgt_len, tgt_out.shape[1]), tgt_out, 0)
    return jnp.all(pad(tokens) == pad(ref), axis=1) & (tgt_len > 0)


def add(a: dict, b: dict) -> dict:
    """Adds two dicts of sums key by key (keys of either)."""
    return {k: a.get(k, 0.0) + b.get(k, 0.0) for k in a.keys() | b.keys()}


def normalize(sums: dict) -> dict:
    """Host-side: sums -> logged metrics (only those whose denominators are present)."""
    s = {k: float(np.asarray(v)) for k, v in jax.device_get(sums).items()}
    out = {}
    ratio = lambda n, d: s[n] / s[d] if s[d] > 0 else float("nan")
    if "tokens" in s:
        out["loss"] = ratio("loss_sum", "tokens")
        out["perplexity"] = (
            math.exp(min(out["loss"], 50.0)) if math.isfinite(out["loss"]) else out["loss"]
        )
        out["token_accuracy"] = ratio("correct", "tokens")
    if "sequences" in s:
        out["seq_accuracy"] = ratio("seq_correct", "sequences")
    if s.get("align_gold", 0) > 0:
        out["align_accuracy"] = ratio("align_hit", "align_gold")
        out["aer"] = 1.0 - 2.0 * s["align_hit"] / (2.0 * s["align_gold"])
        out["cog_offset"] = ratio("cog_sum", "align_gold")
    if "reward_sum" in s:  # hard attention's policy (hard.policy_objective), per real step
        out["reward"] = ratio("reward_sum", "tokens")
        out["reinforce_loss"] = ratio("reinforce_sum", "tokens")
        out["policy_entropy"] = ratio("policy_entropy_sum", "tokens")
        if "baseline_loss_sum" in s:
            out["baseline_loss"] = ratio("baseline_loss_sum", "tokens")
    if s.get("entropy_steps", 0) > 0:
        out["attention_entropy"] = ratio("entropy_sum", "entropy_steps")
    return out


def accuracy_by_length(correct, src_len, tgt_len, table: dict | None = None) -> dict:
    """Host-side: adds per-row results to `{source length: [correct, total]}` (filler skipped)."""
    table = {} if table is None else table
    for right, n, real in zip(
        np.asarray(correct), np.asarray(src_len), np.asarray(tgt_len) > 0, strict=True
    ):
        if real:
            entry = table.setdefault(int(n), [0, 0])
            entry[0] += int(right)
            entry[1] += 1
    return table
