"""``python -m neurovamp`` runs the command line."""

import sys

from neurovamp.cli import main

sys.exit(main())
