"""CLI output piped into `head`, `grep -q` or a pager closed early ends quietly, with the command's own code."""

import os
import subprocess
import sys

import pytest

from chaos.cli import main


@pytest.mark.parametrize("unbuffered", ["1", ""])
@pytest.mark.parametrize("argv", [["list", "--faults"], ["list", "--measures"]])
def test_a_reader_gone_before_the_output_is_no_traceback(argv, unbuffered):
    """The reader closes its end before deadair writes a byte: buffered output meets the closed
    pipe at the last flush (PYTHONUNBUFFERED unset), unbuffered output at the first print."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = unbuffered
    proc = subprocess.Popen(
        [sys.executable, "-m", "chaos", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert "Traceback" not in err and "BrokenPipeError" not in err and err == ""


def test_head_reads_the_first_line_and_the_rest_is_dropped_quietly():
    """A real `| head -1` through the shell: the first line arrives, nothing on stderr."""
    cmd = f"{sys.executable} -m chaos list --measures | head -1"
    done = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 1 and done.stderr == ""


def test_the_command_keeps_its_own_exit_code_after_the_pipe_closed(tmp_path, capsys):
    """Exit 2 for an invalid file stays 2 even though stdout is gone (pipefail keeps its meaning)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("title: x\nmethod: 3\n")

    class Gone:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self):
            raise ValueError("no descriptor")

    saved = sys.stdout
    sys.stdout = Gone()
    try:
        assert main(["list", str(bad), str(bad)]) == 2
    finally:
        sys.stdout = saved
    assert "Traceback" not in capsys.readouterr().err


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOOD = os.path.join(ROOT, "experiments", "mic-cut-hold-music.yaml")


def test_stdout_and_stderr_in_one_pipe_closed_after_the_first_line_keep_the_exit_code(tmp_path):
    """`deadair validate good.yaml missing... 2>&1 | head -1`: stderr meets the closed pipe too
    (more than a pipe's 64 KiB of errors, so a write is waiting when the reader leaves); the
    command still ends with its own code (2), as a run ends with its verdict."""
    missing = [str(tmp_path / f"missing-{'x' * 150}-{i}.yaml") for i in range(600)]
    r, w = os.pipe()
    proc = subprocess.Popen([sys.executable, "-m", "chaos", "validate", GOOD, *missing], stdout=w, stderr=w, cwd=ROOT)
    os.close(w)
    with os.fdopen(r) as reader:
        first = reader.readline()
    assert proc.wait(timeout=60) == 2
    assert first.strip()  # the reader had its line


def test_a_closed_stderr_in_process_keeps_the_exit_code(tmp_path):
    class Gone:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self):
            raise ValueError("no descriptor")

    saved = sys.stderr
    sys.stderr = Gone()
    try:
        code = main(["validate", GOOD, str(tmp_path / "missing.yaml")])
    finally:
        sys.stderr = saved
    assert code == 2


def test_stdout_closed_before_the_start_is_no_error():
    """`deadair list --faults >&-` (as under cron): Python's sys.stdout is None."""
    cmd = f"exec {sys.executable} -m chaos list --faults >&-"
    done = subprocess.run(["sh", "-c", cmd], capture_output=False, stderr=subprocess.PIPE, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == ""
