"""The workload: simulated listeners and what they measure.

listener (one listener and its playout model), swarm (many on one event loop, with the swarm's
own health), ogg (pages read without decoding), ears (golden ears that decode and listen),
probes (the experiment's HTTP and process probes, and the servers' own samples). Everything is
recorded on the run's timeline.
"""
