"""sftdata: build, clean, convert, mix and audit supervised fine-tuning data, and train on it.

The Python API (``sftdata.api``): ``read``, ``apply`` (the steps), ``mix``, ``write``
and ``run``, over ``Data``; the same semantics as the commands.
"""

__version__ = "0.1.0"

_API = ("Data", "read", "apply", "mix", "write", "run")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    """The API names, imported on first use (``import sftdata`` stays light for the CLI)."""
    if name in _API:
        from sftdata import api

        return getattr(api, name)
    raise AttributeError(f"module 'sftdata' has no attribute {name!r}")
