"""sftdata: build, clean, convert, mix and audit supervised fine-tuning data, and train on it."""

__version__ = "0.1.0"
