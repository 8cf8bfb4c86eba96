"""One HTML page per training run: results, curves, health, dataset, config, published numbers."""
