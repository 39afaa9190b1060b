"""aftbench: a reproducible benchmark pipeline for Adaptive Feature Transfer (Qiu et al., ICML 2024)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("aftbench")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "unknown"
