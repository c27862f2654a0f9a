"""What the engine benchmarks share: starting and always stopping a local Ray or Dask cluster of
2 worker processes, and CPU / memory of this process's whole tree (driver, engine daemons,
workers; needs psutil, which dask[distributed] brings and deadair does not). Not a script.

Ray 2.6x: `address="local"` so that a stale cluster recorded under /tmp/ray is never joined; a
short temp dir of our own (Ray needs short socket paths, and other people's sessions stay
untouched); token auth as Ray decides (it reuses ~/.ray/auth_token when there is one). Dask:
`dashboard_address=":0"` (8787 may be taken), and every script that starts a LocalCluster keeps
its body under `if __name__ == "__main__"`, since the cluster spawns processes that re-import it.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psutil

WORKERS = 2


@contextlib.contextmanager
def local_cluster(engine: str, threads_per_worker: int = 1) -> Iterator[Any]:
    """A local cluster of WORKERS processes: yields the `ray` module or a dask Client; stopped on
    every exit path."""
    if engine == "ray":
        import ray

        tmp = tempfile.mkdtemp(prefix="rb", dir="/tmp")
        try:
            ray.init(
                address="local",
                num_cpus=WORKERS,
                include_dashboard=False,
                logging_level="ERROR",
                _temp_dir=tmp,
            )
            try:
                yield ray
            finally:
                ray.shutdown()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    elif engine == "dask":
        from distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=WORKERS, threads_per_worker=threads_per_worker, processes=True, dashboard_address=":0"
        )
        try:
            client = Client(cluster)
            try:
                client.wait_for_workers(WORKERS, timeout=120)
                yield client
            finally:
                client.close()
        finally:
            cluster.close()
    else:
        raise SystemExit(f"engine must be ray or dask, not {engine!r}")


def tree() -> list[psutil.Process]:
    """This process and all its descendants (the whole local cluster)."""
    import psutil  # not a deadair dependency: pip install psutil (dask[distributed] brings it)

    me = psutil.Process()
    return [me, *me.children(recursive=True)]


def cpu_of(procs: list[psutil.Process]) -> float:
    """CPU seconds the processes (and their reaped children) have used."""
    import psutil

    total = 0.0
    for p in procs:
        try:
            c = p.cpu_times()
            total += c.user + c.system + c.children_user + c.children_system
        except psutil.Error:
            pass
    return total


def memory_mb(procs: list[psutil.Process]) -> tuple[float, float]:
    """(RSS, PSS) of the processes in MiB: PSS shares each shared page among its users."""
    import psutil

    rss = pss = 0
    for p in procs:
        try:
            full = p.memory_full_info()
            rss += full.rss
            pss += full.pss
        except psutil.Error:
            pass
    return rss / 2**20, pss / 2**20
