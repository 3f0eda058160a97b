"""Token vocabularies: reserved ids for padding, sequence start/end and unknown tokens.

Every dataset maps its symbols to ids with the four reserved ids first, so models, metrics and
decoders can rely on `PAD_ID == 0` (padding is masked by `id != PAD_ID` or by explicit lengths).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
SPECIALS = (PAD, BOS, EOS, UNK)


class Vocab:
    """A fixed token <-> id mapping; ids 0..3 are `<pad> <s> </s> <unk>`.

    Unknown tokens are mapped to `UNK_ID` by `encode` and counted in `num_unknown` (the caller
    decides whether that is an error).
    """

    def __init__(self, symbols: Iterable[str]):
        symbols = [s for s in symbols]
        clash = sorted(set(symbols) & set(SPECIALS))
        if clash:
            raise ValueError(f"symbols {clash} clash with the reserved tokens {list(SPECIALS)}")
        if len(set(symbols)) != len(symbols):
            raise ValueError("vocabulary symbols must be unique")
        self.tokens: list[str] = list(SPECIALS) + symbols
        self._ids = {t: i for i, t in enumerate(self.tokens)}
        self.num_unknown = 0

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def size(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """Tokens -> int32 ids `[len(tokens)]`; unknown tokens become `UNK_ID` (and are counted)."""
        ids = [self._ids.get(t, UNK_ID) for t in tokens]
        self.num_unknown += sum(i == UNK_ID for i in ids)
        return np.asarray(ids, dtype=np.int32)

    def decode(self, ids: Iterable[int], strip: bool = True) -> list[str]:
        """Ids -> tokens. With `strip`, stops at the first `</s>` and drops `<pad>`/`<s>`."""
        out = []
        for i in ids:
            i = int(i)
            if strip and i == EOS_ID:
                break
            if strip and i in (PAD_ID, BOS_ID):
                continue
            out.append(self.tokens[i] if 0 <= i < len(self.tokens) else UNK)
        return out
