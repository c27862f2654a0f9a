"""The README's example scorecard: `deadair readiness` on a suite, as a user runs it.

    flock /tmp/deadair-docker.lock .venv/bin/python bench/readiness_example.py \
        [--suite experiments] [--policy examples/readiness-policy.yaml] [-- EXTRA DEADAIR ARGS]

Writes bench/results/readiness-<time>.json: the commit, host, cores and time, the command, its
exit code, the printed scorecard and scorecard.json itself. The runs go to a temporary journal
folder and results store (the repository's own history is not touched).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    from results import provenance  # tests/results.py: commit, host, cores, time

    p = argparse.ArgumentParser()
    p.add_argument("--suite", default="experiments")
    p.add_argument("--policy", default="examples/readiness-policy.yaml")
    p.add_argument("extra", nargs="*")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        command = ["readiness", args.suite, "--policy", args.policy, "--journal-dir", f"{tmp}/runs"]
        command += ["--out", f"{tmp}/card", *args.extra]
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "chaos", *command], cwd=ROOT, capture_output=True, text=True)
        seconds = time.monotonic() - t0
        card_file = Path(tmp) / "card" / "scorecard.json"
        card = json.loads(card_file.read_text()) if card_file.is_file() else None
    printed = proc.stdout[proc.stdout.find("READINESS:") :] if "READINESS:" in proc.stdout else proc.stdout
    out = ROOT / "bench" / "results" / f"readiness-{time.strftime('%Y%m%d-%H%M%S')}.json"
    record = {
        **provenance(),
        "command": "deadair " + " ".join(command).replace(tmp, "$TMP"),
        "exit_code": proc.returncode,
        "seconds": round(seconds, 1),
        "scorecard_text": printed,
        "scorecard": card,
        "stderr_tail": proc.stderr[-2000:],
    }
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(printed)
    print(f"exit {proc.returncode} in {seconds:.0f}s; wrote {out}")


if __name__ == "__main__":
    main()
