"""The dashboard binds loopback by default and says so loudly when told to bind anything else."""

from __future__ import annotations

import pytest

from srnas_nni.results import dashboard


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.5.0.9", True), ("::1", True),
                                            ("localhost", True), ("0.0.0.0", False), ("::", False),
                                            ("192.168.1.20", False), ("example.org", False)])
def test_is_loopback(host, loopback):
    assert dashboard.is_loopback(host) is loopback


def test_public_host_prints_a_warning_and_the_url(monkeypatch, capsys):
    served = []
    monkeypatch.setattr("optuna_dashboard.run_server", lambda storage, host, port: served.append((storage, host, port)))
    dashboard.serve("sqlite:///x.db", host="0.0.0.0", port=8123)
    captured = capsys.readouterr()
    assert served == [("sqlite:///x.db", "0.0.0.0", 8123)]
    assert "warning" in captured.err and "0.0.0.0" in captured.err
    assert "http://0.0.0.0:8123/" in captured.out
    dashboard.serve("sqlite:///x.db", port=8124)
    captured = capsys.readouterr()
    assert served[-1][1] == "127.0.0.1" and captured.err == ""
