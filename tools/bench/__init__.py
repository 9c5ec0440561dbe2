"""Speed and accuracy benchmarks of the device path (``facecue-model bench``)."""
