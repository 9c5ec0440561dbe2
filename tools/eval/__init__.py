"""Accuracy, calibration and what the device says, measured on validation data."""
