"""Use a trained network on image files: evaluation's preprocessing, readable top-k labels."""
