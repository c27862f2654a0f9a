"""How far a merged DDSketch's quantiles are from the exact ones, on the values a verdict reads.

    python bench/engines/sketch_acc.py > sketch-acc.json     (a few seconds; needs ddsketch)

100,000 per-listener longest dead airs around 8 s (8.0 s + |N(0, 0.1 s)|, 1 % of them up to 5 s
more; seeded), split over two sketches and merged, at 1 % and 0.1 % relative accuracy: the
absolute error at p50 / p90 / p99 against the exact order statistic, in ms, and the sketch's
protobuf size. The verdicts' bound is 50 ms: a sketch whose error can exceed it may serve reports,
never verdicts.
"""

from __future__ import annotations

import json
import random


def main() -> None:
    from ddsketch import DDSketch
    from ddsketch.pb.proto import DDSketchProto

    rng = random.Random(2)
    vals = [8.0 + abs(rng.gauss(0, 0.1)) + (rng.random() < 0.01) * rng.uniform(0, 5) for _ in range(100_000)]
    exact = sorted(vals)
    quantiles = (0.5, 0.9, 0.99)
    rows = []
    for acc in (0.01, 0.001):
        a, b = DDSketch(relative_accuracy=acc), DDSketch(relative_accuracy=acc)
        for i, v in enumerate(vals):
            (a if i % 2 else b).add(v)
        a.merge(b)
        errs = [abs(a.get_quantile_value(q) - exact[int(q * (len(exact) - 1))]) * 1000 for q in quantiles]
        rows.append(
            {
                "relative_accuracy": acc,
                "abs_error_ms": {f"p{round(q * 100)}": round(e, 1) for q, e in zip(quantiles, errs)},
                "exact_s": {f"p{round(q * 100)}": round(exact[int(q * (len(exact) - 1))], 4) for q in quantiles},
                "proto_bytes": len(DDSketchProto.to_proto(a).SerializeToString()),
            }
        )
    print(json.dumps({"values": len(vals), "seed": 2, "sketches": rows}))


if __name__ == "__main__":
    main()
