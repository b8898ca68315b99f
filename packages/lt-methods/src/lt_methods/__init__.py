"""lt_methods."""

__version__ = "0.1.0"
