"""Type stub of the compiled core (rust/python/). Checked against the binary by mypy.stubtest."""

import os
from collections.abc import Iterable, Sequence
from typing import final

__all__ = [
    "GENERATOR",
    "SNAPSHOT_FORMAT_VERSION",
    "Decision",
    "RouterCore",
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

def validate_policy(policy_json: str, models: int) -> None: ...
def validate_reward(reward_json: str) -> None: ...
def compute_reward(reward_json: str, accuracy: float, cost: float, latency: float) -> float: ...

#: One table per context: (accuracy, cost, latency), each row-major query x model.
_Columns = tuple[Sequence[float], Sequence[float], Sequence[float]]

def replay_sessions(
    models: int,
    columns: list[_Columns],
    reward_json: str,
    strategy_json: str,
    queries: int,
    seeds: list[int],
    trace: bool = False,
    drift_json: str | None = None,
) -> list[
    tuple[
        float,
        float,
        float,
        float,
        float,
        float,
        list[int],
        list[tuple[int, int] | None],
        list[float],
        tuple[int | None, float, float, int, int] | None,
    ]
]: ...
def table_means(models: int, columns: _Columns, reward_json: str) -> list[list[float]]: ...
