"""petra-collector: a Prometheus exporter for Petra Security usage."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("petra-collector")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
