"""``python -m tools.bench``: the same as ``facecue-model bench``."""
import sys

from tools.bench.run import main

sys.exit(main())
