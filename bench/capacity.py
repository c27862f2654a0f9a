"""Benchmark: the library's capacity sweep (experiments/incidents/capacity.yaml), three times.

    .venv/bin/python bench/capacity.py [--repeats 3] [--var steps=500,1000,2000] [--var hold=15s]

Holds the shared Docker lock (/tmp/deadair-docker.lock) for the whole bench: run it without
`flock` around it. Each sweep is `deadair capacity` as a user runs it; its capacity.json gives
the knee, the capacity, the breakpoint and the binding resource. Writes
bench/results/capacity-<time>.json with the commit, host, cores, time, /proc/loadavg before and
after, and each sweep's figures; prints the median and spread of each.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from results import provenance  # noqa: E402  (tests/results.py: commit, host, cores, time)

EXPERIMENT = ROOT / "experiments" / "incidents" / "capacity.yaml"
LOCK = Path("/tmp/deadair-docker.lock")


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


def spread(values: list[float | None]) -> dict:
    xs = [v for v in values if v is not None]
    if not xs:
        return {"median": None, "min": None, "max": None, "n": 0, "of": len(values)}
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs), "of": len(values)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    args = p.parse_args()
    out_dir = ROOT / ".deadair" / "bench-capacity"
    with LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the engine is shared: hold it for the whole bench
        head = {**provenance(), "loadavg_before": loadavg(), "experiment": str(EXPERIMENT.relative_to(ROOT))}
        sweeps = []
        t0 = time.monotonic()
        for i in range(args.repeats):
            cmd = [sys.executable, "-m", "chaos", "capacity", str(EXPERIMENT), "--out", str(out_dir)]
            cmd += [a for v in args.var for a in ("--var", v)]
            before = set(out_dir.glob("*/capacity.json")) if out_dir.exists() else set()
            s0 = time.monotonic()
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600)
            took = time.monotonic() - s0
            print(proc.stdout, flush=True)
            new = sorted(set(out_dir.glob("*/capacity.json")) - before)
            if not new:
                print(proc.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"sweep {i + 1} wrote no capacity.json (exit {proc.returncode})")
            doc = json.loads(new[-1].read_text())
            sweeps.append(
                {
                    "sweep_id": doc["sweep_id"],
                    "file": str(new[-1].relative_to(ROOT)),
                    "exit_code": proc.returncode,
                    "seconds": round(took, 1),
                    "knee": doc["knee"],
                    "capacity": doc["capacity"],
                    "breakpoint": doc["breakpoint"],
                    "broken_by": doc["broken_by"],
                    "stopped": doc["stopped"],
                    "headroom": doc["headroom"],
                    "binding": doc["binding"],
                    "steps": [
                        {
                            "load": s["load"],
                            "status": s["status"],
                            "slo": {f"{e['measure']} {e['expect']}": e.get("value") for e in s.get("slo") or []},
                            "host_cpu": ((s.get("resources") or {}).get("host") or {}).get("cpu_util"),
                            "load_generator_cpu": ((s.get("resources") or {}).get("load_generator") or {}).get(
                                "cpu_util"
                            ),
                            "lag_max": ((s.get("resources") or {}).get("load_generator") or {}).get("lag_max"),
                        }
                        for s in doc["steps"]
                    ],
                }
            )
        result = {
            **head,
            "loadavg_after": loadavg(),
            "vars": args.var,
            "seconds": round(time.monotonic() - t0, 1),
            "sweeps": sweeps,
            "knee": spread([s["knee"] for s in sweeps]),
            "capacity": spread([s["capacity"] for s in sweeps]),
            "breakpoint": spread([s["breakpoint"] for s in sweeps]),
            "binding": [s["binding"]["resource"] if s["binding"] else None for s in sweeps],
        }
    path = ROOT / "bench" / "results" / f"capacity-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    for key in ("knee", "capacity", "breakpoint"):
        s = result[key]
        print(f"{key}: median {s['median']} (min {s['min']}, max {s['max']}; {s['n']} of {s['of']} sweeps had one)")
    print(f"binding: {result['binding']}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
