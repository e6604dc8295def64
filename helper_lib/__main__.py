"""``python -m helper_lib``: see :mod:`helper_lib.tools.cli`."""

import sys

from .tools.cli import main

sys.exit(main())
