"""Backends generate samples; ``sim`` is the embedded default (see ``base.Backend``)."""

from components.backends.base import Backend, Decoding, Generation, Request

__all__ = ["Backend", "Decoding", "Generation", "Request"]
