"""pipeline.launch: the console scripts, as pip generates them from setup.cfg, answer a Ctrl-C that
comes while the tool is still importing (its first second or two) like one that comes later."""

from __future__ import annotations

import configparser
import signal
import subprocess
import sys
from pathlib import Path

import pytest

SETUP_CFG = Path(__file__).resolve().parent.parent / "setup.cfg"


def console_scripts() -> dict[str, str]:
    """``{"aqa-extract": "aqa.pipeline.launch:extract", ...}`` from setup.cfg's entry points."""
    config = configparser.ConfigParser()
    config.read(SETUP_CFG)
    lines = config["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict(tuple(part.strip() for part in line.split("=")) for line in lines)


# The script pip writes for an entry point "module:function", with Ctrl-C pressed when torch is imported.
SCRIPT = """
import os, signal, sys

class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, CtrlC())
from {module} import {function}
sys.exit({function}())
"""


@pytest.mark.parametrize("tool", ["aqa-extract", "aqa-train", "aqa-predict"])
def test_ctrl_c_while_the_tool_imports_is_one_line_and_exit_130(tool, tmp_path):
    """It was a KeyboardInterrupt traceback from the imports and death by the signal (status -2)."""
    module, function = console_scripts()[tool].split(":")
    # As in test_extract's Ctrl-C test: a suite started in the background has SIGINT ignored, which
    # the child would inherit; a Python handler is reset to the default at exec instead.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        result = subprocess.run([sys.executable, "-c", SCRIPT.format(module=module, function=function), "--help"],
                                capture_output=True, text=True, timeout=300, cwd=tmp_path)
    finally:
        signal.signal(signal.SIGINT, inherited)
    assert result.returncode == 130, (result.returncode, result.stderr[-2000:])
    assert result.stderr.strip().splitlines() == [f"{tool}: interrupted"] and result.stdout == ""
