"""Read tabular files row by row with locations for messages (internal).

A :class:`Table` is a header plus an iterator of ``(line, values)``. For a CSV file ``line`` is
the physical line where the record starts (records span lines when a prompt holds newlines); for a
pickled DataFrame it is the 1-based row position.
"""

from __future__ import annotations

import codecs
import csv
import importlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from pickllm.replay._values import raise_csv_field_limit
from pickllm.replay.errors import DataError, OptionalDependencyError

StrPath: TypeAlias = str | os.PathLike[str]

PICKLE_SUFFIXES = frozenset({".pkl", ".pickle"})


def expand_paths(source: StrPath | Iterable[StrPath], suffixes: Iterable[str]) -> list[Path]:
    """One path, or several; a directory stands for its files with one of ``suffixes``, sorted.

    Sorting makes the row order (hence query and model order) independent of the file system.
    """
    items = [source] if isinstance(source, str | os.PathLike) else list(source)
    wanted = {s.lower() for s in suffixes}
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in wanted and p.is_file())
            if not found:
                raise DataError(
                    f"no {'/'.join(sorted(wanted))} file in this folder", path=str(path)
                )
            paths.extend(found)
        elif not path.exists():
            raise FileNotFoundError(f"no such file: {path}")
        else:
            paths.append(path)
    if not paths:
        raise DataError("no input file given")
    return paths


@dataclass
class Table:
    """A header and a way to iterate over the rows, each with its location."""

    path: str
    header: list[str]
    rows: Iterable[tuple[int, list[Any]]]


def open_csv(path: Path) -> Table:
    """A CSV file (comma separated, double quotes, UTF-8 with or without BOM)."""
    raise_csv_field_limit()
    rows = _csv_rows(path)
    try:
        _, header = next(rows)
    except StopIteration:
        raise DataError("empty file: no header", path=str(path)) from None
    return Table(str(path), header, rows)


def utf8_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each physical line, decoded as UTF-8 (a leading BOM is dropped).

    Decoding line by line, rather than through a text-mode file that decodes ahead in chunks, is
    what lets a DataError name the exact line holding a byte that is not UTF-8.
    """
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"not UTF-8 text: {exc.reason} at byte {exc.start + 1} of the line",
                    path=str(path),
                    line=number,
                ) from None
            yield number, text


def _csv_rows(path: Path) -> Iterator[tuple[int, list[Any]]]:
    lines = (text for _, text in utf8_lines(path))
    # strict=True turns stray quotes into errors instead of silently mangled fields.
    reader = csv.reader(lines, strict=True)
    while True:
        start = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # The reader cannot resynchronise after broken quoting (an unterminated quote
            # swallows the rest of the file), so this is an error even in "skip" mode.
            raise DataError(f"not valid CSV here: {exc}", path=str(path), line=start) from None
        if values:  # a blank line is not a record
            yield start, values


def open_pickle(path: Path) -> Table:
    """A pickled pandas DataFrame (RouterBench's published format). Needs pandas.

    Unpickling runs code from the file: load only pickles you trust.
    """
    try:
        pandas: Any = importlib.import_module("pandas")
    except ImportError:
        raise OptionalDependencyError(
            f"reading {path} (a pickled DataFrame) needs pandas, which is not installed: "
            "`pip install pandas`, or use the CSV form of the data"
        ) from None
    try:
        frame = pandas.read_pickle(path)
    except Exception as exc:  # unpickling can fail in many ways; all mean a bad file here
        raise DataError(
            f"cannot read as a pickled DataFrame: {type(exc).__name__}: {exc}", path=str(path)
        ) from None
    if not isinstance(frame, pandas.DataFrame):
        raise DataError(
            f"the pickle holds a {type(frame).__name__}, not a pandas DataFrame", path=str(path)
        )
    header = [str(c) for c in frame.columns]
    # Column-wise tolist() converts numpy scalars to Python floats/str in C, far faster than
    # iterating over rows; iloc avoids surprises with duplicate column names.
    columns = [frame.iloc[:, k].tolist() for k in range(len(header))]
    rows = ((i + 1, list(values)) for i, values in enumerate(zip(*columns, strict=True)))
    return Table(str(path), header, rows)
