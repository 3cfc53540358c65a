"""``python -m pickllm``: the same as the ``pickllm`` console script."""

import sys

from pickllm.cli import main

sys.exit(main())
