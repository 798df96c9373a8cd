"""Fixtures shared with the training tests."""

from tests.train.conftest import digits  # noqa: F401
