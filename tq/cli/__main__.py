"""`python -m tq.cli` is `tq` (tests and process workers start it this way)."""
import sys

from tq.cli import main

sys.exit(main())
