"""The demo campaign files built from the seed documents, wherever the package is installed."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

DEFAULT_DEMO = "glsen-solidarity-week-2023"
"""What `solidarity up` loads unless told otherwise."""


def demo_dir() -> Path:
    """Inside the installed package (wheel, image), or beside pyproject.toml (a checkout)."""
    root = Path(str(importlib.resources.files("solidarity.catalog")))
    inside = root / "demo"
    if inside.is_dir():
        return inside
    for parent in root.parents:
        if (parent / "pyproject.toml").exists() and (parent / "demo").is_dir():
            return parent / "demo"
    raise FileNotFoundError("the catalog's demo folder is not installed")


def demo_files() -> dict[str, Path]:
    """Every demo campaign file by name (the file name without `.yaml`)."""
    return {path.stem: path for path in sorted(demo_dir().glob("*.yaml"))}


def demo_file(name: str = DEFAULT_DEMO) -> Path:
    files = demo_files()
    if name not in files:
        raise FileNotFoundError(f"no demo campaign {name!r} (there are: {', '.join(files)})")
    return files[name]
