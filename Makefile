# Benchmarks (docs/performance.md). `make bench` runs the criterion benches of the Rust core,
# the memory bench and the pytest-benchmark benches of the Python API with their baselines,
# then prints one table (also written to target/bench/report.md).
# Needs the bench extra: pip install -e ".[bench]".

PYTHON ?= python

.PHONY: bench bench-smoke

bench:
	$(PYTHON) benches/report.py

# Every bench once, untimed: what CI runs.
bench-smoke:
	cargo bench --locked --bench core -- --test
	$(PYTHON) -m pytest benches/python --benchmark-disable -q
	$(PYTHON) benches/shared_state.py --smoke
