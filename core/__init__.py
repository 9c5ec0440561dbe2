"""What the audio code and the device share: the expression labels, files
written whole, native stderr kept quiet, and the records passed between stages.

It imports only the standard library and NumPy, so each side takes it without
the other's dependencies; ``tests/test_layers.py`` holds it to that.
"""
