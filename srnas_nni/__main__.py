"""``python -m srnas_nni`` is the ``srnas`` command."""

import sys

from .cli import main

sys.exit(main())
