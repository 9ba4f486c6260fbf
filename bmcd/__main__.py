"""``python -m bmcd``."""

import sys

from bmcd.cli import main

sys.exit(main())
