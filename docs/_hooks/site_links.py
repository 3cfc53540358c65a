"""mkdocs hook: the site's home page links to the site's own pages.

The home page is README.md, whose links to docs/ are absolute GitHub addresses so that they also
work on PyPI (tests/test_readme.py). On the site they would send readers off to GitHub: this hook
includes the README into index.md itself and turns those addresses into relative links to the
pages beside it, which `mkdocs build --strict` then checks like any other link.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[2] / "README.md"
INCLUDE = '--8<-- "README.md"'
_DOCS_LINK = re.compile(r"\]\(https://github\.com/pickllm/pickllm/blob/main/docs/([^)#\s]+\.md)")


def site_links(markdown: str) -> str:
    """``](https://github.com/.../blob/main/docs/page.md#anchor)`` becomes ``](page.md#anchor)``.

    >>> site_links("[x](https://github.com/pickllm/pickllm/blob/main/docs/learners.md#a)")
    '[x](learners.md#a)'
    """
    return _DOCS_LINK.sub(r"](\1", markdown)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if page.file.src_uri != "index.md":
        return markdown
    return site_links(markdown.replace(INCLUDE, README.read_text(encoding="utf-8")))
