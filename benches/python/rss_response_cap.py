"""Peak RSS of one backend call against a 50 MB body, with and without the size cap.

Run once per cap, each in a fresh process (peak RSS only grows):
``python benches/python/rss_response_cap.py none|8388608|1048576`` (docs/reliability.md).
"""

import resource
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from hostile_server import Send, headers, hostile_server
from pickllm.backends import OpenAICompatible
from pickllm.backends.errors import ResponseTooLargeError

SIZE = 50 * 1024 * 1024


def big(send: Send, request: dict[str, Any]) -> None:
    prefix = b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": "'
    suffix = b'"}}]}'
    send(headers(Content_Length=str(len(prefix) + SIZE + len(suffix))) + prefix)
    block = b"x" * 65536
    for _ in range(SIZE // 65536):
        send(block)
    send(suffix)


def main() -> None:
    cap = None if sys.argv[1] == "none" else int(sys.argv[1])
    with (
        hostile_server({"m": big}) as server,
        OpenAICompatible(base_url=server.url, api_key_env=None) as b,
    ):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            c = b.complete([{"role": "user", "content": "hi"}], model="m", max_response_bytes=cap)
            outcome = f"answer of {len(c.text)} chars"
        except ResponseTooLargeError:
            outcome = "ResponseTooLargeError"
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    grown, start = (after - before) / 1024, before / 1024
    print(f"cap={sys.argv[1]}: {outcome}; peak RSS grew by {grown:.0f} MB (from {start:.0f} MB)")


if __name__ == "__main__":  # pytest imports this file for its doctests: run only as a script
    main()
