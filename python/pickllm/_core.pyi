"""Type stub of the compiled core (rust/python/). Checked against the binary by mypy.stubtest."""

import os
from collections.abc import Iterable
from typing import final

from typing_extensions import Buffer

__all__ = [
    "GENERATOR",
    "SNAPSHOT_FORMAT_VERSION",
    "Decision",
    "ReplaySession",
    "RouterCore",
    "_Floor",
    "__version__",
    "compute_reward",
    "replay_sessions",
    "table_means",
    "validate_policy",
    "validate_reward",
]

__version__: str
SNAPSHOT_FORMAT_VERSION: int
GENERATOR: str

@final
class Decision:
    """An immutable record of one routing decision."""

    @property
    def id(self) -> int: ...
    @property
    def model(self) -> str: ...
    @property
    def probability(self) -> float: ...
    @property
    def context(self) -> str: ...
    @property
    def router(self) -> int | None: ...
    def __new__(
        cls, id: int, model: str, probability: float, context: str, router: int | None = None
    ) -> Decision: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __ne__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __reduce__(self) -> tuple[type[Decision], tuple[int, str, float, str, int | None]]: ...

@final
class RouterCore:
    def __new__(cls, config_json: str, seed: int) -> RouterCore: ...
    def select(
        self,
        context: str | None = None,
        *,
        exclude: Iterable[str] | None = None,
        allowed: Iterable[str] | None = None,
    ) -> Decision: ...
    def feedback(
        self, decision: Decision, *, accuracy: float, cost: float = 0.0, latency: float = 0.0
    ) -> float: ...
    @property
    def identity(self) -> int: ...
    def settle(
        self, decision: Decision, *, accuracy: float, cost: float = 0.0, latency: float = 0.0
    ) -> float: ...
    def observe(
        self,
        context: str,
        model: str,
        *,
        accuracy: float,
        cost: float = 0.0,
        latency: float = 0.0,
        probability: float | None = None,
    ) -> float: ...
    def apply_entry(self, blob: bytes, seen: dict[str, int]) -> tuple[int, int]: ...
    def learned(self) -> bytes: ...
    def restore_learned(self, blob: bytes) -> None: ...
    def probabilities(self, context: str) -> list[float]: ...
    def converged(self, context: str) -> str | None: ...
    def feedback_counts(self, context: str) -> list[int]: ...
    def contexts(self) -> list[str]: ...
    def pending(self) -> int: ...
    def context_counts(self) -> tuple[int, int, int, int]: ...
    def config_json(self) -> str: ...
    def snapshot(self) -> bytes: ...
    def write_snapshot(self, path: str | os.PathLike[str]) -> None: ...
    @staticmethod
    def restore(blob: bytes) -> RouterCore: ...

@final
class _Floor:
    """Benchmarks only: ``select`` and ``feedback`` with RouterCore's signatures, doing nothing."""

    def __new__(cls, decision: Decision) -> _Floor: ...
    def select(
        self,
        context: object = None,
        *,
        exclude: object = None,
        allowed: object = None,
    ) -> Decision: ...
    def feedback(
        self,
        decision: object,
        *,
        accuracy: object,
        cost: object = None,
        latency: object = None,
    ) -> float: ...

def validate_policy(policy_json: str, models: int) -> None: ...
def validate_reward(reward_json: str) -> None: ...
def compute_reward(reward_json: str, accuracy: float, cost: float, latency: float) -> float: ...

#: One table per context: (accuracy, cost, latency), each a float64 buffer (``array('d')``),
#: row-major query x model.
_Columns = tuple[Buffer, Buffer, Buffer]

@final
class ReplaySession:
    """What one replayed session produced, sums over its queries."""

    @property
    def cost(self) -> float: ...
    @property
    def latency(self) -> float: ...
    @property
    def accuracy(self) -> float: ...
    @property
    def reward(self) -> float: ...
    @property
    def best_fixed_reward(self) -> float: ...
    @property
    def random_reward(self) -> float: ...
    @property
    def picks(self) -> list[int]: ...
    @property
    def converged(self) -> list[tuple[int, int] | None]: ...
    @property
    def trace(self) -> list[float]: ...
    @property
    def drift(self) -> tuple[int | None, float, float, int, int] | None: ...

def replay_sessions(
    models: int,
    columns: list[_Columns],
    reward_json: str,
    strategy_json: str,
    queries: int,
    seeds: list[int],
    trace: bool = False,
    drift_json: str | None = None,
) -> list[ReplaySession]: ...
def table_means(models: int, columns: _Columns, reward_json: str) -> list[list[float]]: ...
