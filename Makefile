# The developer's entry point; .ci/run calls these targets too.
#
#   make dev        editable install with every extra a developer needs
#   make format     rustfmt and ruff format, in place
#   make lint       format check (Rust, Python), clippy, ruff
#   make typecheck  mypy (strict) and stubtest of the compiled module against _core.pyi
#   make test       cargo test and pytest (the suite, and the docstring and docs examples)
#   make bench      every benchmark with its baseline, one table (docs/performance.md)
#   make docs       the documentation site into site/, strictly (broken links fail)
#   make release    manylinux wheel and sdist into dist/, checked
#
# PYTHON selects the interpreter (a virtualenv's python, say); the Python tools run as modules
# of it so that one virtualenv is used throughout.

PYTHON ?= python
DIST ?= dist

.PHONY: dev format lint lint-rust lint-python typecheck test test-rust test-python bench \
	bench-smoke docs docs-serve release clean

dev:
	$(PYTHON) -m pip install --upgrade "pip>=25.1"
	$(PYTHON) -m pip install --group release -e ".[test,lint,bench,docs]"

format:
	cargo fmt
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .

lint: lint-rust lint-python

lint-rust:
	cargo fmt --check
	cargo clippy --locked --all-targets --all-features -- -D warnings

lint-python:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

# MYPYPATH: stubtest checks the stub of the source tree, whether pickllm is installed editable
# or from a wheel.
typecheck:
	$(PYTHON) -m mypy
	MYPYPATH=python $(PYTHON) -m mypy.stubtest pickllm._core

test: test-rust test-python

test-rust:
	cargo test --locked

# PYTEST_ARGS: CI tests the installed wheel with "tests --pyargs pickllm" (see .ci/run).
test-python:
	$(PYTHON) -m pytest $(PYTEST_ARGS)

# `make bench` runs the criterion benches of the Rust core, the memory bench and the
# pytest-benchmark benches of the Python API with their baselines, then prints one table (also
# written to target/bench/report.md). Needs the bench extra.
bench:
	$(PYTHON) benches/report.py

# Every bench once, untimed: what CI runs.
bench-smoke:
	cargo bench --locked --bench core -- --test
	$(PYTHON) -m pytest benches/python --benchmark-disable -q
	$(PYTHON) benches/shared_state.py --smoke
	$(PYTHON) benches/checkpoint_pause.py --contexts 1000 --rounds 1
	$(PYTHON) benches/snapshot_pause.py --contexts 1000 --rounds 1

docs:
	NO_MKDOCS_2_WARNING=1 $(PYTHON) -m mkdocs build --strict

docs-serve:
	$(PYTHON) -m mkdocs serve

# One abi3 wheel for every CPython >= 3.11 on glibc >= 2.17 (manylinux2014), cross-linked by
# zig against the old glibc whatever the build machine runs, and the sdist; then checked
# (scripts/check_dist.py: platform tag from auditwheel, sdist contents, twine check).
# maturin runs zig as `python3 -m ziglang`: PATH starts with PYTHON's scripts folder so that
# python3 is the one with the release extra installed.
SCRIPTS = $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
release:
	rm -rf $(DIST)
	PATH="$(SCRIPTS):$$PATH" $(PYTHON) -m maturin build --release --zig --compatibility manylinux2014 --out $(DIST)
	$(PYTHON) -m maturin sdist --out $(DIST)
	$(PYTHON) scripts/check_dist.py $(DIST)

clean:
	rm -rf $(DIST) site target/wheels
