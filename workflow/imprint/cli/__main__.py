"""python -m imprint.cli: the `imprint` command."""

import sys

from imprint.cli.main import main

sys.exit(main())
