"""The name -> builder registry in a fresh interpreter: looking up one space imports that space only."""

from __future__ import annotations

import subprocess
import sys


def test_looking_up_one_space_imports_that_space_only():
    code = ("import sys\nfrom srnas_nni.spaces import get, list_spaces\n"
            "names = list_spaces()\n"
            "assert not [n for n in names if f'srnas_nni.spaces.{n}' in sys.modules], names\n"
            "get('dlsr', scale=2)\n"
            "print(sorted(n for n in names if f'srnas_nni.spaces.{n}' in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "['dlsr']"
