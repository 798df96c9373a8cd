"""The tiny reference models come from the session fixture `tiny_models` in tests/conftest.py."""
