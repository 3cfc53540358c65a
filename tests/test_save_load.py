"""Router.save and Router.load: atomic, versioned, checksummed files; every corruption is a
clear SnapshotError and never a half-loaded router."""

from __future__ import annotations

import os
import subprocess
import sys
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
        (lambda b: b[:8] + (99).to_bytes(4, "little") + b[12:], "newer"),
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


def test_save_writes_through_a_symlink_and_keeps_it(tmp_path: Path) -> None:
    data = tmp_path / "volume"
    data.mkdir()
    real = data / "state.pickllm"
    Router(["x"], seed=1).save(real)
    link = tmp_path / "router.pickllm"
    link.symlink_to(real)
    router = trained()
    router.save(link)
    assert link.is_symlink()
    assert link.resolve() == real
    assert real.read_bytes() == router.snapshot()
    assert sorted(p.name for p in data.iterdir()) == ["state.pickllm"]


@pytest.mark.parametrize("kind", ["fifo", "folder", "device"])
def test_save_refuses_what_is_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "router.pickllm"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    else:
        path.symlink_to("/dev/null")
    before = path.lstat()
    with pytest.raises(SnapshotError, match="not a regular file"):
        trained().save(path)
    after = path.lstat()
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino), "left as it was"
    assert [p.name for p in tmp_path.iterdir()] == ["router.pickllm"]
    assert Path("/dev/null").is_char_device()


def test_temporaries_of_killed_saves_are_removed_by_the_next_save_or_load(tmp_path: Path) -> None:
    path = tmp_path / "router.pickllm"
    trained().save(path)
    # A child process writes a temporary file the way save() does, and is killed before the
    # rename; a second one is still alive, so its temporary file must stay.
    script = (
        "import os, sys, tempfile, time\n"
        "fd, name = tempfile.mkstemp(prefix=f'.router.pickllm.pickllm-tmp.{os.getpid()}.', "
        "dir=sys.argv[1])\n"
        "os.write(fd, b'half a snapshot')\n"
        "print(name, flush=True)\n"
        "time.sleep(600)\n"
    )
    killed = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    alive = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert killed.stdout is not None
        assert alive.stdout is not None
        left = Path(killed.stdout.readline().strip())
        working = Path(alive.stdout.readline().strip())
        killed.kill()
        killed.wait()
        unrelated = tmp_path / ".other.pickllm.pickllm-tmp.1.abc"
        unrelated.write_bytes(b"")
        assert left.exists()
        assert working.exists()
        Router.load(path)
        assert not left.exists(), "the killed writer's file is gone"
        assert working.exists(), "a running writer's file stays"
        assert unrelated.exists(), "another path's file stays"
        (tmp_path / left.name).write_bytes(b"again")  # an orphan of a pid that no longer runs
        router = trained()
        router.save(path)
        assert not (tmp_path / left.name).exists()
        assert working.exists()
    finally:
        alive.kill()
        alive.wait()
        killed.stdout.close()  # type: ignore[union-attr]
        alive.stdout.close()  # type: ignore[union-attr]
    assert Router.load(path).snapshot() == router.snapshot()
