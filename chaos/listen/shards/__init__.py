"""The distributed swarm: listeners split into shards, each a long-lived worker of a distributed
engine (Ray) running the same asyncio listeners as the one-process swarm.

    digest   per-listener summaries: the facts the measures read, compact (what most listeners ship)
    shard    one shard: a Swarm on the worker's event loop, its events batched for the runner
    engine   Ray: an embedded local cluster or an existing one, shards placed across its nodes
    fleet    the runner's side: one Swarm-like object over all shards (clock offsets, heartbeats,
             merging into the run's timeline, lost workers)
    limits   what one shard may hold: open files, ephemeral ports per source address, bandwidth

Ray is optional (`pip install deadair[cluster]`): nothing here imports it until a run asks for
workers.
"""
