"""``python -m poststelle.routing.cli``: the ``poststelle`` script without the script."""

import contextlib
import sys

from poststelle.routing.cli.main import main

with contextlib.suppress(KeyboardInterrupt):
    sys.exit(main())
