"""``python -m skillbank.cli``: the ``skillbank`` command."""

import sys

from skillbank.cli.main import main

sys.exit(main())
