"""Until the app is built, its command must say so plainly and fail, not pretend to work."""

from __future__ import annotations

import shutil
import subprocess


def test_command_reports_not_built_and_fails():
    command = shutil.which("parakeet")
    assert command, "the parakeet console script is not installed"
    result = subprocess.run([command, "clip.wav"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "not built yet" in result.stderr
