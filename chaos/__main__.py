"""`python -m chaos` is the `deadair` CLI."""
import sys

from .cli import main

sys.exit(main())
