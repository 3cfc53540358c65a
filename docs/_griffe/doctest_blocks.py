"""Griffe extension of the docs site: doctest examples written flush in a docstring (``>>>``
lines and their output, as the package writes them) become ``pycon`` code blocks. Markdown would
otherwise read them as nested quotes and ``x["key"]`` as a link reference."""

from __future__ import annotations

from typing import Any

import griffe

PROMPTS = (">>>", "...")


def fence(text: str) -> str:
    lines, out, inside = text.splitlines(), [], False
    for line in lines:
        code = line.lstrip().startswith(PROMPTS)
        if code and not inside:
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}```pycon")
            inside = True
        elif inside and not line.strip():
            out.append(f"{indent}```")
            inside = False
        out.append(line)
    if inside:
        out.append(f"{indent}```")
    return "\n".join(out)


class DoctestBlocks(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence(obj.docstring.value)
