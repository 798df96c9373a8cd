"""qconvert: export and compress neural networks, and prove each artifact in its own runtime."""
