"""``python -m tools.train``: the same as ``facecue-model train``."""
import sys

from tools.train.cli import main

sys.exit(main())
