"""Training, export and the recipe that makes the shipped model."""
