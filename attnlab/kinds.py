"""The registry of attention kinds: how a decoder step turns its query into weights and a
context (the interface is `attnlab.attention.AttentionKind`).

| name      | weights                                                    | paper             |
|-----------|------------------------------------------------------------|-------------------|
| `soft`    | softmax over every source position (global)                | Bahdanau 2015     |
| `local_m` | softmax in a window at `p_t = t` (Eq. 7)                   | Luong 2015 §3.2   |
| `local_p` | window at a predicted `p_t` (Eq. 9), times Gaussian (Eq. 10) | Luong 2015 §3.2 |
| `hard`    | one sampled position, trained by REINFORCE                 | Xu et al. 2015    |

A new kind is a frozen dataclass subclass of `AttentionKind` in its own module, added to
`KINDS`; its options are fields of `config.model.attention` with the same names.
"""

from __future__ import annotations

from attnlab.attention import AttentionKind, Soft
from attnlab.hard import Hard
from attnlab.local import LocalM, LocalP

KINDS: dict[str, type[AttentionKind]] = {k.name: k for k in (Soft, LocalM, LocalP, Hard)}


def kind_errors(model_cfg, content_based: bool) -> list[str]:
    """Why `config.model.attention.kind` cannot run with this model section, as
    `config.<field>=<value> is invalid: <reason>` messages (`content_based`: whether
    `model.score` compares the query with the keys). Empty when the kind is known, its
    options are valid, and its constraints hold."""
    name = model_cfg.attention.kind
    head = f"config.model.attention.kind={name!r} is invalid"
    if name not in KINDS:
        return [f"{head}: must be one of {', '.join(KINDS)}"]
    cls = KINDS[name]
    errors = [
        f"{head}: {reason}"
        for reason in cls.constraint_errors(model_cfg.decoder, model_cfg.score, content_based)
    ]
    section = model_cfg.attention
    for field, reason in cls.from_config(model_cfg).option_errors():
        errors.append(f"config.model.attention.{field}={section[field]!r} is invalid: {reason}")
    return errors


def build_kind(model_cfg) -> AttentionKind:
    """The kind named by `config.model.attention.kind`, with its options from the config."""
    return KINDS[model_cfg.attention.kind].from_config(model_cfg)
