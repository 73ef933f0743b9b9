"""Ports, signals and NNI's node binary, for the tests that start processes."""

from __future__ import annotations

from pathlib import Path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def signal_when_ready(process, ready, signum, *, wait: float = 180, timeout: float = 120) -> str:
    """Send ``signum`` to ``process`` once ``ready()`` is true; return its output once it has ended.

    Fails if ``process`` ends first or ``ready()`` stays false for ``wait`` seconds; the process is
    killed if it is still running when this returns or fails.
    """
    import time

    try:
        deadline = time.time() + wait
        while not ready():
            assert process.poll() is None, f"the process ended first: {process.communicate()[0]}"
            assert time.time() < deadline, f"not ready within {wait} s"
            time.sleep(0.05)
        process.send_signal(signum)
        output, errors = process.communicate(timeout=timeout)
        return (output or "") + (errors or "")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


#: NNI's bundled node binary (its manager runs on it).
NNI_NODE_BINARY = Path(__import__("nni_node").__path__[0]) / "node"


def nni_node_problem() -> str | None:
    """Why NNI's manager cannot start on this machine, or None."""
    import subprocess

    if not NNI_NODE_BINARY.is_file():
        return f"NNI's node binary is missing ({NNI_NODE_BINARY})"
    try:
        subprocess.run([str(NNI_NODE_BINARY), "--version"], check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"NNI's node binary does not run: {exc}"
    return None
