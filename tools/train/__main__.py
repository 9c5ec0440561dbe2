"""SageMaker's entry script (``tools.cloud.sagemaker.ENTRY_POINT``): ``facecue-model train``.

The training container runs this file with the job's hyperparameters as
``--key value`` options and the code folder on PYTHONPATH, not an installed
``facecue-model``; so this one file stays, and it runs exactly that command.
"""
import sys

from tools.cli import main

sys.exit(main(["train", *sys.argv[1:]]))
