"""critix: fast, tested actor-critic and value-based deep RL on JAX."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("critix")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.1.0"

__all__ = ["__version__"]
