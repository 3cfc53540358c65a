"""``pickllm serve``: an OpenAI-compatible gateway that routes with pickllm and learns from
delayed feedback. Needs the ``server`` extra: ``pip install ".[server]"`` in a clone (see the
README, "Install").

See docs/gateway.md for the config file, endpoints, headers, feedback, metrics and workers.
"""

from pickllm.gateway.app import create_app as create_app
from pickllm.gateway.config import GatewayConfig as GatewayConfig
from pickllm.gateway.config import load_config as load_config

__all__ = ["GatewayConfig", "create_app", "load_config"]
