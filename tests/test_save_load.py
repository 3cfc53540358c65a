"""Router.save and Router.load: atomic, versioned, checksummed files; every corruption is a
clear SnapshotError and never a half-loaded router."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pickllm import QLearning, Router, SnapshotError


def trained() -> Router:
    router = Router(["a", "b", "c"], policy=QLearning(0.2), seed=4)
    for i in range(50):
        d = router.select(f"ctx{i % 3}")
        router.feedback(d, accuracy=float(d.model == "b"), cost=0.001, latency=0.3)
    router.select("ctx0")  # one decision left pending
    return router


def test_save_then_load_is_identical(tmp_path: Path) -> None:
    router = trained()
    path = tmp_path / "router.pickllm"
    router.save(path)
    loaded = Router.load(path)
    assert loaded.snapshot() == router.snapshot()
    assert [loaded.select("ctx1") for _ in range(20)] == [router.select("ctx1") for _ in range(20)]
    assert [p.name for p in tmp_path.iterdir()] == ["router.pickllm"], "no temporary file left"


def test_save_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "router.pickllm"
    first = trained()
    first.save(path)
    second = Router(["x"], seed=1)
    second.save(path)
    assert Router.load(path).models == ("x",)


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda b: b"", "empty"),
        (lambda b: b[: len(b) // 2], "truncated"),
        (lambda b: b[:20], "truncated"),
        (lambda b: b[:-1] + bytes([b[-1] ^ 0x20]), "checksum"),
        (lambda b: b[:8] + (2).to_bytes(4, "little") + b[12:], "newer"),
        (lambda b: b"{" + b[1:], "magic"),
    ],
)
def test_corrupted_files_are_rejected(tmp_path: Path, damage: object, words: str) -> None:
    path = tmp_path / "router.pickllm"
    trained().save(path)
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    with pytest.raises(SnapshotError, match=words) as caught:
        Router.load(path)
    assert isinstance(caught.value, ValueError)


def test_a_failed_save_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "router.pickllm"
    trained().save(path)
    before = path.read_bytes()

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        Router(["x"], seed=1).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["router.pickllm"]
