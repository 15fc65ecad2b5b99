"""Entry point of ``python -m benchmarks.smoke``: the same as ``python -m benchmarks --smoke``.

A tiny paired run (N=100, 3 rounds) for CI: exits non-zero on a wrong result, never on timing.
"""

import sys

from benchmarks._cli import main

if __name__ == "__main__":
    sys.exit(main(["--smoke", *sys.argv[1:]], program="python -m benchmarks.smoke"))
