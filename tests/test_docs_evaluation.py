"""The examples of docs/evaluation.md run as written, in order, in one namespace."""

from __future__ import annotations

import re

from conftest import REPO_ROOT


def test_evaluation_doc_examples_run() -> None:
    text = (REPO_ROOT / "docs" / "evaluation.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) == 2
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, "docs/evaluation.md", "exec"), namespace)
