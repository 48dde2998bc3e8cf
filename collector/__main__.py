"""`python -m collector` runs the same commands as `petra-collector`."""

import sys

from collector.cli import main

sys.exit(main())
