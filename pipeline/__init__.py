"""The stages wired together: configs, the command-line tools, the Python API's workings and the demo."""
