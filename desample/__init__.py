"""desample: remove SAMPLE watermarks from anime pictures and enlarge them."""

__version__ = "0.1.0"
