"""autoresearch: execution-grounded auto-research over training environments."""

__version__ = "0.1.0"
