"""The nemesis: fault families (network, node, mic, flood), their undo actions, and the
rollback ledger. `chaos.faults.builtin` registers the built-in fault kinds with the
language's registry (it is the `faults` entry of the `deadair.plugins` group); the package
itself imports nothing, so that a flood process (chaos.faults.flooder) stays light.
"""
