"""The same listeners as shard.py on the host's own event loop instead of a thread of their own:
a Ray async actor's loop (uvloop when installed), a Dask worker's loop (async actor methods), or
asyncio.run / uvloop.run in a plain process. Not a script: async_bench.py imports it.
"""

from __future__ import annotations

import asyncio
import os
import resource
import threading
import time
from typing import Any

from shard import Shard


class AsyncShard(Shard):
    """Shard whose methods are coroutines run by the host's loop."""

    async def astart(self, host: str, port: int, n: int) -> int:
        from ddsketch import DDSketch

        self.sketch = DDSketch(relative_accuracy=0.01)
        self.loop = asyncio.get_running_loop()
        await self._connect(host, port, n, threading.Event())
        return sum(1 for x in self.listeners if not x.lost)

    async def ameasure(self, seconds: float) -> dict[str, Any]:
        r0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        self.measuring, self.lag_max = True, 0.0
        await asyncio.sleep(seconds)
        self.measuring = False
        r1, w1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        return {
            "pid": os.getpid(),
            "n": len(self.listeners),
            "alive": sum(1 for x in self.listeners if not x.lost),
            "wall": w1 - w0,
            "cpu": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
            "lag_max": self.lag_max,
            "loop": type(self.loop).__module__,
            "nthreads_os": len(os.listdir("/proc/self/task")),
        }

    async def astop(self) -> bool:
        for x in self.listeners:
            if not x.lost and x.t is not None:
                x.t.close()
        self._lag_task.cancel()
        return True
