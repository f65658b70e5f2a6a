"""imprint: weight imprinting on frozen embeddings (the IMPRINT framework), as pure functions."""

__version__ = "0.1.0"
