"""``python -m featcodec ...``: the same as the ``featcodec`` command."""

import sys

from .integrations.cli import main

sys.exit(main())
