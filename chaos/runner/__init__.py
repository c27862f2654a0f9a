"""Running an experiment: `chaos.runner.run.run(experiment, RunOptions())` -> RunResult.

The modules, in the order a run goes through them (`run._run` calls them in this order):
    run        run(): the phases in order, and what every exit path goes through
    model      RunOptions, RunResult, exit codes, Interrupted
    context    RunContext: the state the phases share (timeline, ledger, worker threads)
    startup    leftovers swept, faults built, the stack brought up or reused
    live       on the event loop: listeners, gate, method, recovery
      listeners  the swarm joins, warms up, leaves
      method     faults applied and reverted on the plan's clock; guardrails
      sampling   probes (the experiment's and the servers') onto the timeline
    rollback   the ledger reverted, then the experiment's rollback actions
    judging    verdicts, status, exit code
    outputs    journal, summary, traceback
"""
