"""The stages wired together: configs, the command-line tools and the demo."""

__version__ = "0.1.0"
