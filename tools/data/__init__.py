"""Faces, scenes and videos made from the data: what training and evaluation read."""
