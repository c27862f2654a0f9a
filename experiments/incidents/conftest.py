"""The incident library is not collected as pytest items by a plain `pytest` (scripts/test).

Each scenario's `vars:` are its full size (minutes each, and some document a weakness of the
stack: their expected verdict is "failed"), so as experiment items they would fail CI and eat its
budget. CI runs every scenario at CI size, with its documented verdicts asserted, in
tests/integration/test_incidents_*.py; run one at full size with `deadair run FILE`, all of them
with `deadair readiness experiments/incidents`, or measure them with bench/incidents.py.
"""

collect_ignore_glob = ["*.yaml", "*.yml", "*.json"]
