"""``python -m facerecon.cli``: the ``facerecon`` command without the installed script."""
import sys

from . import main

sys.exit(main())
