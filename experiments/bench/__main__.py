"""``python -m experiments.bench``: see the package's docstring."""

import sys

from experiments.bench.cli import main

sys.exit(main())
