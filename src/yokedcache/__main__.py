"""``python -m yokedcache``: the same command line as ``yokedcache``."""

import sys

from .cli import main

sys.exit(main())
