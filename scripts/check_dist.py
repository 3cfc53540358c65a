"""Check what `make release` put in dist/ before anything is uploaded.

- exactly one wheel and one sdist, of the same version;
- the wheel is abi3 and auditwheel finds it consistent with manylinux2014 (glibc 2.17): every
  versioned glibc symbol it links is at most GLIBC_2.17, so it installs on CentOS 7, Debian 9+,
  Ubuntu 18.04+;
- the wheel carries the compiled core, its stub and py.typed;
- the sdist holds the sources and nothing generated (replay output, build folders, caches);
- `twine check --strict` accepts both (metadata and the README render on PyPI).

Usage: python scripts/check_dist.py dist
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

MANYLINUX = "manylinux_2_17_x86_64"
WHEEL_MUST_HOLD = ("pickllm/__init__.py", "pickllm/_core.pyi", "pickllm/py.typed")
SDIST_MUST_HOLD = (
    "Cargo.toml",
    "Cargo.lock",
    "pyproject.toml",
    "LICENSE",
    "README.md",
    "rust/lib.rs",
)
# Generated folders that must never be packed, at any depth.
SDIST_FORBIDDEN = ("pickllm-replay", "target", "dist", "site", "__pycache__", ".pytest_cache")


def fail(message: str) -> None:
    sys.exit(f"check_dist: {message}")


def check_wheel(wheel: Path) -> None:
    if "-cp311-abi3-" not in wheel.name:
        fail(f"{wheel.name} is not an abi3 wheel for CPython >= 3.11")
    names = zipfile.ZipFile(wheel).namelist()
    for required in WHEEL_MUST_HOLD:
        if required not in names:
            fail(f"{wheel.name} lacks {required}")
    if not any(re.fullmatch(r"pickllm/_core\.abi3\.so", n) for n in names):
        fail(f"{wheel.name} lacks the compiled core pickllm/_core.abi3.so")
    shown = subprocess.run(
        [sys.executable, "-m", "auditwheel", "show", str(wheel)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    tag = re.search(r'consistent with the following platform tag:\s*"([^"]+)"', shown)
    if tag is None or tag.group(1) != MANYLINUX:
        fail(f"auditwheel: {wheel.name} is not {MANYLINUX}:\n{shown}")
    glibc = {tuple(map(int, v.split("."))) for v in re.findall(r"GLIBC_(\d+\.\d+)", shown)}
    newest = max(glibc, default=(0, 0))
    if newest > (2, 17):
        fail(f"{wheel.name} needs GLIBC_{newest[0]}.{newest[1]} > 2.17")
    print(
        f"check_dist: {wheel.name}: {MANYLINUX}, newest glibc symbol GLIBC_{newest[0]}.{newest[1]}"
    )


def check_sdist(sdist: Path) -> None:
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    top = names[0].split("/")[0]
    inside = {name.removeprefix(f"{top}/") for name in names}
    for required in SDIST_MUST_HOLD:
        if required not in inside:
            fail(f"{sdist.name} lacks {required}")
    stray = sorted(n for n in inside if set(n.split("/")) & set(SDIST_FORBIDDEN))
    if stray:
        fail(f"{sdist.name} packs generated files: {stray[:5]}")
    print(f"check_dist: {sdist.name}: {len(inside)} files, nothing generated")


def main(dist: Path) -> None:
    wheels = sorted(dist.glob("*.whl"))
    sdists = sorted(dist.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        fail(f"expected one wheel and one sdist in {dist}, found {wheels + sdists}")
    (wheel,), (sdist,) = wheels, sdists
    if wheel.name.split("-")[1] != sdist.name.removesuffix(".tar.gz").split("-")[1]:
        fail(f"{wheel.name} and {sdist.name} differ in version")
    check_wheel(wheel)
    check_sdist(sdist)
    subprocess.run([sys.executable, "-m", "twine", "check", "--strict", wheel, sdist], check=True)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "dist"))
