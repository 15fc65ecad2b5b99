"""Entry point of ``python -m benchmarks``: paired mode by default, ``--mode pyperf`` too.

Imports nothing from dloader itself; benchmarks._cli decides which dloader is measured.
"""

import sys

from benchmarks._cli import main

if __name__ == "__main__":
    sys.exit(main())
