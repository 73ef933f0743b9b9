"""optuna-dashboard for a run's study, on this machine's loopback interface unless told otherwise."""

from __future__ import annotations

import logging
import sys

from ..runtime import is_loopback

__all__ = ["serve", "is_loopback"]

_logger = logging.getLogger(__name__)


def serve(storage: str, *, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve optuna-dashboard on ``storage`` until interrupted (blocks); prints the URL first."""
    from optuna_dashboard import run_server

    if not is_loopback(host):
        print(f"srnas: warning: the dashboard listens on {host}, reachable from other machines; its API can "
              "edit the study", file=sys.stderr)
    print(f"optuna-dashboard: http://{'[' + host + ']' if ':' in host else host}:{port}/  (Ctrl-C stops it)",
          flush=True)
    run_server(storage, host=host, port=port)
