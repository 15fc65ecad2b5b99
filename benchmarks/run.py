"""Script entry point: ``python benchmarks/run.py [options]``, same options as ``-m benchmarks``.

Works from any directory; pyperf workers are started through this file too.
"""

import sys
from pathlib import Path

if __name__ == "__main__":
    # sys.path[0] is benchmarks/ itself; the package is imported from its parent, which is
    # later taken off sys.path again unless dloader is only available from the checkout.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    from benchmarks._cli import main

    sys.exit(main(program="python benchmarks/run.py"))
