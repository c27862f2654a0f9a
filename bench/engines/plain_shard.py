"""One shard (shard.py) in a plain process: the baseline bench.py pairs with each engine shard.

    python bench/engines/plain_shard.py PORT N SECONDS    -> one JSON line on stdout

Connects N listeners to server.py at PORT, waits 3 s, measures SECONDS (Shard.measure: this
process's CPU from getrusage, the worst loop lag), disconnects.
"""

from __future__ import annotations

import json
import sys
import time

from shard import Shard


def main() -> None:
    port, n, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    s = Shard("plain")
    s.start("127.0.0.1", port, n)
    time.sleep(3)
    r = s.measure(secs)
    s.stop()
    print(json.dumps(r))


if __name__ == "__main__":
    main()
