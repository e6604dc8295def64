"""``python -m helper_lib``: see :mod:`helper_lib.tools.cli`."""

import sys

# jsonschema's unused iri checker costs the commands that read notebooks (book, grade) 1.3 s:
# see helper_lib.tools.grading_run.skip_unused_iri_checker
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[assignment]

from .tools.cli import main  # noqa: E402

sys.exit(main())
