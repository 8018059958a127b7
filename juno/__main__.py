"""``python -m juno``: the same as the ``juno`` command (the supervisor starts stages so)."""

import sys

from juno.cli import main

sys.exit(main())
