"""edgekit: host tools for MicroPython smart-city edge devices."""

__version__ = "0.1.0"
