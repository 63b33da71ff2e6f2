"""atstack: AT Protocol network infrastructure in Python."""

__version__ = "0.1.0"
