"""The plugin collects experiment YAML files as items; invalid files are collection errors."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

pytest_plugins = ["pytester"]

VALID = (ROOT / "experiments" / "mic-cut-hold-music.yaml").read_text().replace("stack: audio-room",
                                                                              f"stack: {ROOT / 'compose' / 'audio-room'}")


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
    result.stdout.fnmatch_lines(["*invalid deadair experiment*", "*bad.yaml:17:10: method[[]0[]].for: 'eight' is not valid*"])
    assert result.ret == 2
