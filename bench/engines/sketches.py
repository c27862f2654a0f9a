"""Mergeable histograms for shards' distributions: merge correctness and size, three libraries.

    pip install hdrhistogram tdigest        # ddsketch comes with deadair[cluster]
    python bench/engines/sketches.py [--libraries ddsketch,hdrhistogram,tdigest] > sketches.json

Data (seeded): per-listener gaps between reads in ms, ~N(100, 3) with 0.2 % stalls of 0.5-9 s, 2
shards x 1,000 listeners x 60 values. Each library builds one sketch per shard, ships it in its own
wire format, merges, and is compared with the exact quantiles at p50 / p99 / p99.9 / max; also the
size of one shard's sketch and of one listener's. tdigest (pure Python) takes about 45 s here.
"""

from __future__ import annotations

import argparse
import json
import pickle
import random
import time
from typing import Any

Q = [0.5, 0.99, 0.999, 1.0]


def gaps(rng: random.Random, n: int) -> list[float]:
    out = []
    for _ in range(n):
        g = rng.gauss(100, 3)
        if rng.random() < 0.002:
            g = rng.uniform(500, 9000)
        out.append(max(0.1, g))
    return out


def ddsketch(shards: list[list[list[float]]]) -> dict[str, Any]:
    from ddsketch import DDSketch
    from ddsketch.pb.ddsketch_pb2 import DDSketch as Wire
    from ddsketch.pb.proto import DDSketchProto

    t = time.perf_counter()
    sketches = [DDSketch(relative_accuracy=0.01) for _ in shards]
    for s, d in zip(shards, sketches):
        for lis in s:
            for v in lis:
                d.add(v)
    blobs = [DDSketchProto.to_proto(d).SerializeToString() for d in sketches]
    merged = DDSketchProto.from_proto(Wire.FromString(blobs[0]))
    merged.merge(DDSketchProto.from_proto(Wire.FromString(blobs[1])))
    one = DDSketch(relative_accuracy=0.01)
    for v in shards[0][0]:
        one.add(v)
    return {
        "merged": [round(merged.get_quantile_value(q), 2) for q in Q],
        "count": merged.count,
        "bytes_per_shard": [len(b) for b in blobs],
        "pickle_bytes": len(pickle.dumps(sketches[0])),
        "bytes_per_listener": len(DDSketchProto.to_proto(one).SerializeToString()),
        "seconds": round(time.perf_counter() - t, 2),
    }


def hdrhistogram(shards: list[list[list[float]]]) -> dict[str, Any]:
    from hdrh.histogram import HdrHistogram

    t = time.perf_counter()
    hs = [HdrHistogram(1, 60_000_000, 2) for _ in shards]  # µs, 1 µs to 60 s, 2 digits
    for s, h in zip(shards, hs):
        for lis in s:
            for v in lis:
                h.record_value(int(v * 1000))
    enc = [h.encode() for h in hs]
    merged = HdrHistogram(1, 60_000_000, 2)
    for e in enc:
        merged.decode_and_add(e)
    one = HdrHistogram(1, 60_000_000, 2)
    for v in shards[0][0]:
        one.record_value(int(v * 1000))
    return {
        "merged": [round(merged.get_value_at_percentile(q * 100) / 1000, 2) for q in Q],
        "count": merged.get_total_count(),
        "bytes_per_shard": [len(e) for e in enc],
        "bytes_per_listener": len(one.encode()),
        "seconds": round(time.perf_counter() - t, 2),
    }


def tdigest(shards: list[list[list[float]]]) -> dict[str, Any]:
    from tdigest import TDigest

    t = time.perf_counter()
    ts = []
    for s in shards:
        d = TDigest()
        for lis in s:
            d.batch_update(lis)
        ts.append(d)
    merged = ts[0] + ts[1]
    return {
        "merged": [round(merged.percentile(q * 100), 2) for q in Q],
        "count": merged.n,
        "bytes_per_shard": [len(pickle.dumps(d.to_dict())) for d in ts],
        "seconds": round(time.perf_counter() - t, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--libraries", default="ddsketch,hdrhistogram,tdigest")
    args = p.parse_args()
    rng = random.Random(1)
    shards = [[gaps(rng, 60) for _ in range(1000)] for _ in range(2)]
    allv = sorted(v for s in shards for lis in s for v in lis)
    out: dict[str, Any] = {
        "quantiles": Q,
        "values": len(allv),
        "exact": [round(allv[min(len(allv) - 1, int(q * len(allv)))], 2) for q in Q],
    }
    libs = {"ddsketch": ddsketch, "hdrhistogram": hdrhistogram, "tdigest": tdigest}
    for name in args.libraries.split(","):
        out[name] = libs[name](shards)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
