"""The ``srnas`` command run in this process, its exit status and output captured."""

from __future__ import annotations

from srnas_nni.cli import main


def run(capsys, *argv):
    """``srnas ARGV`` (each argument as a string): (exit status, stdout, stderr)."""
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err
