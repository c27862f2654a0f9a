"""`python -m chaos` is the `deadair` CLI."""

import sys

from chaos.cli import main

sys.exit(main())
