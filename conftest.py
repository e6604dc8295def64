"""Test-session set-up shared by tests/ and the nbmake notebook runs.

* Notebooks run in smoke mode (tiny settings) unless VAE_SMOKE is set explicitly.
* VAE_DATA_DIR is made absolute: nbmake starts each kernel in notebooks/, so a relative path
  such as ../shared/data would otherwise point somewhere else.
* Figures render off-screen.
"""

import os
from pathlib import Path

os.environ.setdefault("VAE_SMOKE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
if os.environ.get("VAE_DATA_DIR"):
    os.environ["VAE_DATA_DIR"] = str(Path(os.environ["VAE_DATA_DIR"]).expanduser().resolve())
