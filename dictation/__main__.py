"""``python -m dictation``."""

import sys

from dictation.cli import main

sys.exit(main())
