"""Model definitions (Keras, training only) and the shipped TFLite models.

Importing this package needs no TensorFlow: the device only uses
:data:`MODELS_DIR` to find the shipped ``.tflite`` files and their JSON.
"""
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL = MODELS_DIR / "facecue_vgg_elu_int8.tflite"
