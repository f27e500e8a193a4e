"""The package's version, in a module of its own (as httpx keeps it) so that lower layers (the
OTLP encoder, the tracer's SDK scope) read it without importing the package's face."""

__version__ = "0.1.0"
