#!/usr/bin/env bash
# attnlab's speed against the JoeyNMT peer, measured back to back in one sitting: ROUNDS rounds
# (default 2) of the peer (speed.sh, both attention types) then attnlab (scripts/bench.py, the
# same model and data: Luong order, additive and general scores). Timings on a shared machine
# drift 10-30% between sittings; the ratio within one sitting is what to report.
#
#   bash scripts/peer_joeynmt/side_by_side.sh          # from the project root; ~15 min on 2 cores
#   ROUNDS=1 BENCH_ARGS="--decode-batch=512" bash scripts/peer_joeynmt/side_by_side.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
for round in $(seq 1 "${ROUNDS:-2}"); do
  echo "== round $round: joeynmt"
  bash "$HERE/speed.sh"
  echo "== round $round: attnlab"
  (cd "$ROOT" && python scripts/bench.py --scores=additive,general --decoders=luong --steps=200 \
      ${BENCH_ARGS:-})
done
