"""facecue device daemon: camera -> face -> expression -> voice."""

__version__ = "0.1.0"
