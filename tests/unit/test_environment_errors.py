"""A missing engine or an unreachable Toxiproxy: one sentence saying what to run, exit 3."""

from pathlib import Path

import pytest

from chaos.cli import main
from chaos.errors import EnvironmentNotReady
from chaos.stack.toxiproxy import Toxiproxy

FLAGSHIP = Path(__file__).resolve().parents[2] / "experiments" / "mic-cut-hold-music.yaml"


def test_missing_engine_exits_3_and_says_what_to_run(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    monkeypatch.setenv("DEADAIR_STATE", str(tmp_path / "state"))
    assert main(["run", str(FLAGSHIP), "--journal-dir", str(tmp_path / "runs")]) == 3
    err = capsys.readouterr().err
    assert "no Docker engine answers" in err and "deadair setup" in err
    assert not (tmp_path / "runs").exists()


def test_unreachable_toxiproxy_is_a_clear_error():
    with pytest.raises(EnvironmentNotReady, match="Toxiproxy is unreachable at http://127.0.0.1:9.*deadair stack up"):
        Toxiproxy("http://127.0.0.1:9", timeout=1).ensure_reachable()
