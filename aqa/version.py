"""The package's version, in a module of its own: the stage folders record it (provenance, model
cards, metrics) and import it from here, never from ``aqa/__init__.py``, whose lazy attributes load
the API and so the stages themselves (an arrow upward in the house plan)."""

__version__ = "0.1.0"
