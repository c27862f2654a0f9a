"""`deadair init` on a compose file with no deadair labels, then the generated experiment run to a
verdict: a pass, and a failure once the fault is big enough, which shows the probe goes through
the link `init` put in front of the database. About 40 s; the stack is its own, not audio-room's."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import deadair

USER_COMPOSE = """\
version: "2.4"
services:
  web:
    image: deadair/audio-room:latest
    command: ["python3", "/app/server.py"]
    environment:
      REDIS_URL: redis://db:6379/0
    ports: ["8080"]
    volumes: ["./app:/app:ro"]
    depends_on: [db]
    healthcheck:
      test: ["CMD", "python3", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/', timeout=2)"]
      interval: 1s
      timeout: 3s
      retries: 3
      start_period: 20s
  db:
    image: deadair/audio-room:latest
    command: ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"]
"""

SERVER = """\
# answers 200 when Redis answers PING, 503 otherwise
import http.server, os, socket, urllib.parse
db = urllib.parse.urlparse(os.environ["REDIS_URL"])
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            with socket.create_connection((db.hostname, db.port or 6379), timeout=10) as s:
                s.sendall(b"PING\\r\\n")
                ok = s.recv(64).startswith(b"+PONG")
        except OSError:
            ok = False
        self.send_response(200 if ok else 503)
        self.end_headers()
        self.wfile.write(b"ok" if ok else b"no db")
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
"""


@pytest.fixture(autouse=True)
def stack_left_clean():
    """This test brings up a stack of its own (not audio-room's) and takes it down itself."""
    yield


def test_init_then_run_the_generated_experiment(tmp_path: Path):
    app = tmp_path / "myshop"
    (app / "app").mkdir(parents=True)
    (app / "app" / "server.py").write_text(SERVER)
    (app / "docker-compose.yml").write_text(USER_COMPOSE)
    project = f"deadair-inittest{os.getpid()}"
    generated = app / "compose" / "myshop" / "docker-compose.yml"
    experiment = app / "experiments" / "myshop-first.yaml"
    journals = tmp_path / "runs"
    try:
        init = deadair("init", "--link", "db:6379", "--entry", "web:8080", cwd=app)
        assert init.returncode == 0, init.stderr
        assert "REDIS_URL=redis://db:6379/0 -> redis://toxiproxy:8001/0" in init.stdout
        assert (app / "docker-compose.yml").read_text() == USER_COMPOSE  # never modified
        assert (app / "pytest.ini").is_file() and generated.is_file()
        valid = deadair("validate", str(experiment), cwd=app)
        assert valid.returncode == 0, valid.stderr

        common = ("--keep-stack", "--project", project, "--journal-dir", str(journals))
        passed = deadair("run", str(experiment), *common, cwd=app)
        assert passed.returncode == 0, passed.stdout + passed.stderr
        status = deadair("stack", "status", "--stack", str(generated), "--project", project, "--json", cwd=app)
        links = {link["name"]: link for link in json.loads(status.stdout)["links"]}
        assert links.keys() == {"entry-web", "db"} and all(link["present"] for link in links.values())

        # 3 s on every Redis reply, past the probe's 2 s: the probe fails only if it goes through link db
        slow = deadair("run", str(experiment), *common, "--var", "method.0.with.latency=3s", cwd=app)
        assert slow.returncode == 1, slow.stdout + slow.stderr
        verdicts = [line.split() for line in slow.stdout.splitlines() if "probe web answers" in line]
        assert [(v[0], v[6]) for v in verdicts] == [  # phase, verdict
            ("before", "PASS"),
            ("during", "FAIL"),
            ("after", "PASS"),
        ], slow.stdout
    finally:
        down = deadair("stack", "down", "--stack", str(generated), "--project", project, cwd=app)
    assert down.returncode == 0, down.stderr
