"""The README's quickstart runs as written."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import REPO_ROOT


def python_blocks(section: str) -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, flags=re.DOTALL)


def test_quickstart_runs_as_written() -> None:
    (block,) = python_blocks("Quickstart")
    namespace: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert 0.0 <= namespace["r"] <= 1.0  # type: ignore[operator]
    assert namespace["same"].snapshot() == namespace["blob"]  # type: ignore[attr-defined]


def test_console_script_exists() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pickllm", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("pickllm ")


def test_links_are_absolute_so_they_work_on_pypi() -> None:
    text = (REPO_ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)]+)\)", text)
    assert targets
    relative = [t for t in targets if not t.startswith("https://")]
    assert relative == []
