"""``python -m featcodec ...``: the same as the ``featcodec`` command."""

import sys

from .cli import main

sys.exit(main())
