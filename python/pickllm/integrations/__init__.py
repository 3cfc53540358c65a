"""pickllm inside other tools. Each module needs its tool's extra (``pickllm[litellm]``)."""
