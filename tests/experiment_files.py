"""Experiment files written for a test and the problems loading them reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.errors import ExperimentError
from chaos.language.loader import load_experiment


def problems(text: str, tmp_path: Path) -> list[str]:
    """Every problem of `text` as a file, located, with the file's path shown as F."""
    f = tmp_path / "exp.yaml"
    f.write_text(text)
    with pytest.raises(ExperimentError) as info:
        load_experiment(f)
    return [str(p).replace(str(f), "F") for p in info.value.problems]
