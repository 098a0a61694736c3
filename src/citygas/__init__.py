"""citygas: prepaid piped natural gas for City Gas Distribution companies."""

__version__ = "0.1.0"
