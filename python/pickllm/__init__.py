"""pickllm: route each LLM query to the model that serves its context best, learned online.

>>> from pickllm import Router, LearningAutomaton, Reward
>>> router = Router(["gpt-4o", "mistral-7b"], policy=LearningAutomaton(0.1), seed=1)
>>> decision = router.select(context="finance")
>>> reward = router.feedback(decision, accuracy=1.0, cost=0.002, latency=1.2)
"""

from pickllm._core import Decision as Decision
from pickllm._core import __version__ as __version__
from pickllm.backends import Anthropic as Anthropic
from pickllm.backends import BackendError as BackendError
from pickllm.backends import OpenAICompatible as OpenAICompatible
from pickllm.budget import Budget as Budget
from pickllm.budget import BudgetExceeded as BudgetExceeded
from pickllm.budget import BudgetUnavailable as BudgetUnavailable
from pickllm.config import UCB as UCB
from pickllm.config import ChangeDetector as ChangeDetector
from pickllm.config import Exp3 as Exp3
from pickllm.config import LearningAutomaton as LearningAutomaton
from pickllm.config import Policy as Policy
from pickllm.config import QLearning as QLearning
from pickllm.config import Reward as Reward
from pickllm.config import ThompsonSampling as ThompsonSampling
from pickllm.config import default_policy as default_policy
from pickllm.contexts import PromptContexts as PromptContexts
from pickllm.errors import ArgumentTypeError as ArgumentTypeError
from pickllm.errors import ConfigError as ConfigError
from pickllm.errors import DecisionError as DecisionError
from pickllm.errors import EncodingError as EncodingError
from pickllm.errors import FeedbackError as FeedbackError
from pickllm.errors import NoEligibleModelError as NoEligibleModelError
from pickllm.errors import PickLLMError as PickLLMError
from pickllm.errors import PromptError as PromptError
from pickllm.errors import SnapshotError as SnapshotError
from pickllm.errors import UnknownModelError as UnknownModelError
from pickllm.health import CircuitBreaker as CircuitBreaker
from pickllm.models import Model as Model
from pickllm.router import Router as Router
from pickllm.routing import AllModelsFailedError as AllModelsFailedError
from pickllm.routing import RouteResult as RouteResult
from pickllm.state import RedisState as RedisState
from pickllm.stats import ContextStats as ContextStats

__all__ = [
    "UCB",
    "AllModelsFailedError",
    "Anthropic",
    "ArgumentTypeError",
    "BackendError",
    "Budget",
    "BudgetExceeded",
    "BudgetUnavailable",
    "ChangeDetector",
    "CircuitBreaker",
    "ConfigError",
    "ContextStats",
    "Decision",
    "DecisionError",
    "EncodingError",
    "Exp3",
    "FeedbackError",
    "LearningAutomaton",
    "Model",
    "NoEligibleModelError",
    "OpenAICompatible",
    "PickLLMError",
    "Policy",
    "PromptContexts",
    "PromptError",
    "QLearning",
    "RedisState",
    "Reward",
    "RouteResult",
    "Router",
    "SnapshotError",
    "ThompsonSampling",
    "UnknownModelError",
    "__version__",
    "default_policy",
]
