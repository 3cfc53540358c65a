"""Checks of a command's output paths, made before the run so that a typo in ``--out`` or
``--json`` costs a second, not the whole run's work."""

from __future__ import annotations

import os
from pathlib import Path

from pickllm.errors import PickLLMError

__all__ = ["check_output_file", "prepare_output_folder"]


def check_output_file(path: Path, option: str) -> None:
    """Raise PickLLMError unless ``path`` can be written as a file: not a folder, in an
    existing folder that can be written to."""
    if path.is_dir():
        raise PickLLMError(f"{option} {path}: is a folder; give a file name")
    folder = path.parent
    if not folder.is_dir():
        raise PickLLMError(f"{option} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise PickLLMError(f"{option} {path}: not writable")


def prepare_output_folder(path: Path, option: str) -> None:
    """Create the folder ``path`` (and its parents) now, or raise PickLLMError saying why not."""
    if path.exists() and not path.is_dir():
        raise PickLLMError(f"{option} {path}: is a file; give a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PickLLMError(f"{option} {path}: cannot create it: {error.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise PickLLMError(f"{option} {path}: not writable")
