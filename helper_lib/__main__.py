"""``python -m helper_lib``: see :mod:`helper_lib.tools.cli`."""

import sys

from .tools.grading_run import skip_unused_iri_checker

# before anything imports nbformat: 1.3 s less for the commands that read notebooks (book, grade)
skip_unused_iri_checker()

from .tools.cli import main  # noqa: E402

sys.exit(main())
