"""aftbench: a reproducible benchmark pipeline for Adaptive Feature Transfer (Qiu et al., ICML 2024)."""

__version__ = "0.1.0"
