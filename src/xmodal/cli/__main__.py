"""``python -m xmodal.cli``: the same as the ``xmodal`` script."""

import sys

from . import main

sys.exit(main())
