"""``python -m depot``: the same command as ``depot``."""

import sys

from depot.cli import main

sys.exit(main())
