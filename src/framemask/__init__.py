"""framemask: frame-accurate video de-identification."""

__version__ = "0.1.0"
