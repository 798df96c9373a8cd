"""Conversion as a pipeline of stages over IR variants (convert.py lists them in order), reading the option
groups of options.py. `qconvert sensitivity` reuses the load and data stages (sensitivity.py)."""
