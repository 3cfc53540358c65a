"""Every Python example of the documentation site runs, page by page, as written.

The site (mkdocs.yml) is docs/*.md, with README.md and CHANGELOG.md included as its home and
changelog pages. The examples of one page run in order in one namespace, as a reader would run
them. Examples that talk to a server (an address on 127.0.0.1: the local LLM servers, a gateway,
Redis) never run here, where they would reach whatever happens to listen on that port: they run
in tests/e2e, tests/gateway and tests/state against servers those tests started, with the
addresses swapped. SERVER_EXAMPLES counts them, so a new one cannot slip in untested.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import REPO_ROOT

SITE_PAGES = sorted(
    [REPO_ROOT / "README.md", REPO_ROOT / "CHANGELOG.md", *(REPO_ROOT / "docs").rglob("*.md")]
)

#: Examples needing servers, per page, and the end-to-end test that runs them.
SERVER_EXAMPLES = {
    # tests/e2e/test_e2e_route.py::test_readme_routing_example_runs,
    # tests/e2e/test_e2e_docs.py::test_the_readme_gateway_example_runs_on_the_local_models
    # (and offline: tests/gateway/test_docs_gateway.py), and
    # tests/state/test_docs_shared_state.py::test_the_readme_example_learns_through_the_test_s_...
    "README.md": 3,
    # tests/e2e/test_e2e_docs.py::test_the_litellm_example_runs_on_the_local_models (and
    # offline: tests/gateway/test_litellm.py::test_the_docs_example_runs)
    "docs/gateway.md": 1,
    "docs/scorers.md": 2,  # tests/e2e/test_e2e_scorers.py::test_docs_examples_run_against_...
}


def python_blocks(page: Path) -> list[str]:
    """The ```python blocks of a page, in order."""
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.DOTALL)


def needs_servers(block: str) -> bool:
    return re.search(r"\w+://127\.0\.0\.1:", block) is not None


def name(page: Path) -> str:
    return page.relative_to(REPO_ROOT).as_posix()


@pytest.mark.parametrize("page", SITE_PAGES, ids=name)
def test_offline_examples_run(page: Path) -> None:
    namespace: dict[str, object] = {}
    for block in python_blocks(page):
        if not needs_servers(block):
            exec(compile(block, name(page), "exec"), namespace)


def test_every_server_example_is_run_by_an_e2e_test() -> None:
    counts = {name(p): sum(map(needs_servers, python_blocks(p))) for p in SITE_PAGES}
    assert {page: n for page, n in counts.items() if n} == SERVER_EXAMPLES


def test_site_has_examples_on_the_pages_that_teach() -> None:
    # The pages with the most examples: a regex gone wrong would otherwise find none and pass.
    assert len(python_blocks(REPO_ROOT / "docs" / "routing.md")) >= 7
    assert len(python_blocks(REPO_ROOT / "docs" / "scorers.md")) >= 5
    assert len(python_blocks(REPO_ROOT / "README.md")) >= 2
