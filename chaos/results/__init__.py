"""What runs add up to over time: the results store, the stack's fingerprint across runs, baselines
and `--fail-on` regression rules, repeats and flaky verdicts.

Post-run work, done by the entry points (chaos.cli, chaos.pytest_plugin) after `run()` returns,
from the summary a run wrote; the runner never imports this package.
    store      the SQLite results store: every run's summary, keyed by experiment id; tags
    rules      `--fail-on MEASURE:TOLERANCE`: parsed, checked against the experiment, evaluated
    compare    one run against another (a baseline): measure by measure deltas
    history    `deadair history`: an experiment's runs, with stack changes marked
    repeats    `--repeat N`: each measure's spread, flaky verdicts, the repeat summary
    cli        the commands (history, compare, baseline) and the run's hooks (--results,
               --baseline, --fail-on, --repeat)
"""

EXIT_REGRESSED = 6  # every hypothesis held, but a measure regressed beyond a --fail-on tolerance
EXIT_FLAKY = 7  # --repeat N: a verdict (or the runs' outcome) differed across the repeats
