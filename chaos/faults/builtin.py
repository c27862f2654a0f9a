"""The built-in fault kinds: importing this registers every family (a `deadair.plugins` entry).

The order of the imports is the order `deadair list --faults` and "expected one of" messages show.
"""

# ruff: noqa: I001
from chaos.faults import network  # noqa: F401  (each family registers its kinds on import)
from chaos.faults import node  # noqa: F401
from chaos.faults import mic  # noqa: F401
from chaos.faults import flood  # noqa: F401
