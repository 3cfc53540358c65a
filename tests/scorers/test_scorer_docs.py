"""The examples in docs/scorers.md run as written (docstring examples run as doctests)."""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def docs_blocks() -> list[str]:
    """The ```python blocks of docs/scorers.md, in order."""
    text = (REPO_ROOT / "docs" / "scorers.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_docs_examples_without_servers_run() -> None:
    offline = [block for block in docs_blocks() if "127.0.0.1" not in block]
    assert len(offline) >= 3
    namespace: dict[str, object] = {}
    for block in offline:
        exec(compile(block, "docs/scorers.md", "exec"), namespace)
