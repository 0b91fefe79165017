"""LatentDMX: drive DMX512 lights from small generative neural models."""

__version__ = "0.1.0"
