"""The example nightly workflow (examples/github-actions-nightly.yml) is valid YAML, uploads what
the README says it does, and names only deadair commands and flags that exist: each one is looked
up in the output of `deadair <command> --help`, so renaming a flag without updating the example
fails here, not on a user's first night. Its experiments and --fail-on rules are checked too."""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

from chaos.language.loader import load_experiment
from chaos.results.rules import check_rules, parse_fail_on

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "examples" / "github-actions-nightly.yml"
COMMAND = re.compile(r"(?:^|[\s;&|(])(?:scripts/deadair|deadair)\s+([a-z][a-z-]*)(?P<rest>[^\n;&|]*)")
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def steps(workflow: dict) -> list[dict]:
    return [s for job in workflow["jobs"].values() for s in job["steps"]]


@cache
def help_text(*command: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "chaos", *command, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def deadair_commands(workflow: dict) -> list[tuple[str, list[str]]]:
    out = []
    for step in steps(workflow):
        script = re.sub(r"\\\n", " ", step.get("run", ""))  # continuation lines: one command
        for m in COMMAND.finditer(script):
            out.append((m.group(1), FLAG.findall(m.group("rest"))))
    return out


def test_it_is_a_scheduled_workflow(workflow):
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert on["schedule"][0]["cron"].count(" ") == 4
    (job,) = workflow["jobs"].values()
    assert job["strategy"]["fail-fast"] is False
    uses = [s["uses"].split("@")[0] for s in steps(workflow) if "uses" in s]
    assert "actions/checkout" in uses and "actions/upload-artifact" in uses
    assert "actions/cache/restore" in uses and "actions/cache/save" in uses  # the results store, night to night


def test_it_uploads_junit_reports_and_journals(workflow):
    (upload,) = [s for s in steps(workflow) if s.get("uses", "").startswith("actions/upload-artifact")]
    assert upload.get("if") == "always()"  # a failed night is the one whose artifacts matter
    paths = upload["with"]["path"].split()
    for wanted in ("junit.xml", "report.html", "journal.jsonl", "metrics.prom"):
        assert any(p.endswith(wanted) for p in paths), wanted


def test_it_names_only_deadair_commands_and_flags_that_exist(workflow):
    commands = deadair_commands(workflow)
    used = {name for name, _ in commands}
    assert {"run", "history"} <= used
    run_flags = {f for name, flags in commands if name == "run" for f in flags}
    assert {"--junit-xml", "--metrics-out", "--push-gateway", "--baseline", "--fail-on", "--results"} <= run_flags
    top = help_text()
    for name, flags in commands:
        assert re.search(rf"\b{name}\b", top.split("positional arguments")[-1]), f"no command `deadair {name}`"
        listed = set(FLAG.findall(help_text(name)))
        for flag in flags:
            assert flag in listed, f"`deadair {name}` has no {flag} (deadair {name} --help lists {sorted(listed)})"


def test_its_experiments_and_rules_are_valid(workflow):
    (job,) = workflow["jobs"].values()
    entries = job["strategy"]["matrix"]["include"]
    assert entries
    for entry in entries:
        exp = load_experiment(ROOT / entry["file"])  # an invalid experiment would be exit 2 every night
        check_rules([parse_fail_on(entry["fail-on"])], exp)  # a rule for a measure it never judges: exit 2
        assert entry["id"] == Path(entry["file"]).stem
