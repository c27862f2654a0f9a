"""The plugin collects experiment YAML files as items; invalid files are collection errors."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

pytest_plugins = ["pytester"]

VALID = (
    (ROOT / "experiments" / "mic-cut-hold-music.yaml")
    .read_text()
    .replace("stack: audio-room", f"stack: {ROOT / 'compose' / 'audio-room'}")
)


def test_experiments_are_collected_with_tags_as_markers(pytester):
    pytester.makeini("[pytest]\ndeadair_paths = experiments\n")
    pytester.mkdir("experiments")
    (pytester.path / "experiments" / "cut.yaml").write_text(VALID)
    (pytester.path / "notes.yaml").write_text("not: an experiment\n")  # outside deadair_paths: ignored
    result = pytester.runpytest("--collect-only", "-q", "-m", "deadair and smoke")
    result.stdout.fnmatch_lines(["experiments/cut.yaml::Hold music covers a microphone-path cut"])
    assert result.ret == 0
    assert "notes.yaml" not in result.stdout.str()


def test_invalid_experiment_is_a_collection_error_with_position(pytester):
    pytester.makeini("[pytest]\ndeadair_paths = experiments\n")
    pytester.mkdir("experiments")
    (pytester.path / "experiments" / "bad.yaml").write_text(VALID.replace("for: 8s", "for: eight"))
    result = pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(
        ["*invalid deadair experiment*", "*bad.yaml:17:10: method[[]0[]].for: 'eight' is not valid*"]
    )
    assert result.ret == 2


def _scripted_runs(monkeypatch, codes: list[int]) -> list[int]:
    """The plugin's `run` replaced by one that returns the given exit codes in turn (no stack)."""
    import chaos.pytest_plugin as plugin
    from chaos.runner.run import RunResult

    calls: list[int] = []
    status = {0: "passed", 1: "failed", 4: "inconclusive"}

    def fake_run(experiment, options):
        code = codes[len(calls)]
        calls.append(code)
        return RunResult(experiment=experiment, run_id=f"r{len(calls)}", status=status[code], exit_code=code)

    monkeypatch.setattr(plugin, "run", fake_run)
    monkeypatch.setattr(plugin._Stacks, "get", lambda self, name="audio-room", near=None: None)
    return calls


def test_an_inconclusive_run_is_measured_again_and_a_failed_one_is_not(pytester, monkeypatch):
    pytester.makeini("[pytest]\ndeadair_paths = experiments\n")
    pytester.mkdir("experiments")
    (pytester.path / "experiments" / "cut.yaml").write_text(VALID)
    calls = _scripted_runs(monkeypatch, [4, 0])
    assert pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider").ret == 0 and calls == [4, 0]
    calls = _scripted_runs(monkeypatch, [4, 4])
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    assert result.ret == 1 and calls == [4, 4]
    result.stdout.fnmatch_lines(["*INCONCLUSIVE (exit 4)*"])
    calls = _scripted_runs(monkeypatch, [1])
    assert pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider").ret == 1 and calls == [1]
    calls = _scripted_runs(monkeypatch, [4])
    assert pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider", "--deadair-inconclusive-retries", "0").ret == 1
    assert calls == [4]


def test_a_file_named_on_the_command_line_is_collected_outside_deadair_paths(pytester):
    pytester.makeini("[pytest]\ndeadair_paths = experiments\n")
    elsewhere = pytester.mkdir("elsewhere")
    (elsewhere / "mine.yaml").write_text(VALID)
    (elsewhere / "bad.yaml").write_text(VALID.replace("for: 8s", "for: eight"))
    walked = pytester.runpytest("--collect-only", "-q", "elsewhere")  # a directory walk: deadair_paths decides
    assert walked.ret == 5 and "mine.yaml" not in walked.stdout.str()
    named = pytester.runpytest("--collect-only", "-q", "elsewhere/mine.yaml")
    named.stdout.fnmatch_lines(["elsewhere/mine.yaml::Hold music covers a microphone-path cut"])
    assert named.ret == 0
    bad = pytester.runpytest("--collect-only", "-q", str(elsewhere / "bad.yaml"))  # absolute, invalid
    bad.stdout.fnmatch_lines(
        ["*invalid deadair experiment*", "*bad.yaml:17:10: method[[]0[]].for: 'eight' is not valid*"]
    )
    assert bad.ret == 2


def test_a_named_yaml_file_of_another_plugin_is_left_to_it(pytester):
    """`pytest test_api.tavern.yaml` with a Tavern-like plugin: its item, no deadair collection error."""
    pytester.makeini("[pytest]\ndeadair_paths = experiments\n")
    pytester.makeconftest(
        """
import pytest

class Stage(pytest.Item):
    def runtest(self):
        pass

class TavernFile(pytest.File):
    def collect(self):
        yield Stage.from_parent(self, name="stage")

def pytest_collect_file(file_path, parent):
    if file_path.name.endswith(".tavern.yaml"):
        return TavernFile.from_parent(parent, path=file_path)
"""
    )
    (pytester.path / "test_api.tavern.yaml").write_text(
        "test_name: get items\nstages:\n  - name: list\n    request: {url: 'http://x/items', method: GET}\n"
    )
    result = pytester.runpytest("--collect-only", "-q", "test_api.tavern.yaml")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["test_api.tavern.yaml::stage"])
    assert "invalid deadair experiment" not in result.stdout.str()


def test_a_file_named_by_its_path_and_through_a_symlink_is_one_item(pytester):
    pytester.makeini("[pytest]\ndeadair_paths = experiments\n")
    elsewhere = pytester.mkdir("elsewhere")
    (elsewhere / "mine.yaml").write_text(VALID)
    (pytester.path / "link.yaml").symlink_to(elsewhere / "mine.yaml")
    result = pytester.runpytest("--collect-only", "-q", "elsewhere/mine.yaml", "link.yaml")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*1/2 tests collected (1 deselected)*"])


def test_a_named_file_is_an_experiment_by_its_top_level_keys_in_any_yaml_style(tmp_path):
    """Flow style, quoted keys and a misspelt `methods:` beside a `title` are claimed (a located
    error beats "no match"); Tavern's `stages`, a list, or a key nested deeper are not."""
    from chaos.pytest_plugin import _looks_like_experiment

    step = "{at: 0s, fault: link.latency, target: entry-api, for: 1s, with: {latency: 10ms}}"
    cases = {
        f"{{title: t, method: [{step}]}}\n": True,
        f'"title": t\n"method":\n  - {step}\n': True,
        "title: t\nmethods:\n  - {at: 0s}\n": True,
        "test_name: x\nstages:\n  - {name: s, request: {url: 'http://x', method: GET}}\n---\ntitle: t\n": False,
        "title: t\nstages: []\n": False,
        "- method: x\n": False,
        "other:\n  method: x\n  title: y\n": False,
    }
    for i, (text, claimed) in enumerate(cases.items()):
        f = tmp_path / f"f{i}.yaml"
        f.write_text(text)
        assert _looks_like_experiment(f) is claimed, text
