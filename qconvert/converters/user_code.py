"""Importing a user's Python file: only with an explicit --trust-code, since importing runs its code."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable

from qconvert.errors import SourceLoadError, UsageError


def split_factory(spec: str) -> tuple[Path, str]:
    """`path/file.py:build` -> (path, 'build')."""
    file, _, name = spec.rpartition(":")
    return Path(file), name


def is_factory_spec(spec: str) -> bool:
    file, _, name = spec.rpartition(":")
    return file.endswith(".py") and name.isidentifier()


def load_callable(spec: str, *, trust_code: bool, flag: str = "--trust-code") -> Callable[..., Any]:
    path, name = split_factory(spec)
    if not path.is_file():
        raise UsageError(f"no such file: {path} (from {spec})")
    if not trust_code:
        raise UsageError(
            f"{spec} is Python code and loading it runs it; pass {flag} if you trust {path}"
        )
    module_name = "qconvert_user_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    module = sys.modules.get(module_name)
    if module is None:
        import_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(import_spec)
        # Let the file import its siblings (as when run from its own folder) and the packages of the
        # project it is called from (as under `python -m`).
        extra = [str(path.resolve().parent), str(Path.cwd())]
        sys.path[:0] = extra
        try:
            import_spec.loader.exec_module(module)
        except Exception as error:
            raise SourceLoadError(f"importing {path} failed: {type(error).__name__}: {error}") from error
        finally:
            for entry in extra:
                sys.path.remove(entry)
        sys.modules[module_name] = module
    factory = getattr(module, name, None)
    if not callable(factory):
        raise UsageError(f"{path} has no callable named {name!r}")
    return factory
