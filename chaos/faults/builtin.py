"""The built-in fault kinds: importing this registers every family (a `deadair.plugins` entry)."""

from chaos.faults import flood, mic, network, node  # noqa: F401  (each registers its kinds on import)
