"""Fakes that ship with the package: a tiny zero-cost environment for tests and benchmarks."""

from pathlib import Path

ENVIRONMENTS_DIR = Path(__file__).parent / "environments"
