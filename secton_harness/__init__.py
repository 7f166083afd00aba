"""secton-harness: the shared core (config, keys, client, contract, records, metrics, CLI)."""

from importlib import metadata

try:
    __version__ = metadata.version("secton-harness")
except metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
