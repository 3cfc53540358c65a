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


def test_the_site_home_page_links_to_the_site_s_own_pages() -> None:
    """On the docs site the README is the home page: docs/_hooks/site_links.py turns its GitHub
    links to docs/ into links to the site's pages, each of which exists."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "site_links", REPO_ROOT / "docs" / "_hooks" / "site_links.py"
    )
    assert spec is not None
    assert spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    (index,) = [line for line in (REPO_ROOT / "docs" / "index.md").read_text().splitlines() if line]
    assert index == hook.INCLUDE

    class Page:
        class file:  # noqa: N801 (the shape of mkdocs' Page.file)
            src_uri = "index.md"

    home = hook.on_page_markdown(index, Page())
    assert "github.com/pickllm/pickllm/blob/main/docs/" not in home
    pages = re.findall(r"\]\(([\w/-]+\.md)(?:#[\w-]+)?\)", home)
    assert len(pages) >= 8
    assert all((REPO_ROOT / "docs" / page).is_file() for page in pages), pages
