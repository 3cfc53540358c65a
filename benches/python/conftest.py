"""Benches of the Python API next to their baselines (see docs/performance.md).

``python -m pytest benches/python --benchmark-disable`` runs each once, as a smoke test;
``make bench`` times them. The baselines live beside this file, which is put on ``sys.path``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
