"""Deployment bundles: `qconvert package RUN_DIR --target T -o BUNDLE` (and `--bundle` on a conversion) turn one
artifact of a conversion into a folder a device-side caller can check and ship: static batch-1 files,
manifest.json, SHA256SUMS, golden inputs and outputs, a verify.py that needs only the runtime and numpy."""
