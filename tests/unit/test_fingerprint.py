"""The stack's fingerprint: what a compose file mounts and builds, hashed, so that a changed config
shows as a changed stack (and says which file), without an engine."""

from __future__ import annotations

from pathlib import Path

from chaos.stack.definition import StackDefinition, find_stack
from chaos.stack.fingerprint import _copy_sources, differences, fingerprint

ROOT = Path(__file__).resolve().parents[2]

COMPOSE = """
services:
  toxiproxy:
    image: tox
    labels: {deadair.toxiproxy: "8474", deadair.link.app: "0.0.0.0:8001 -> app:80"}
  app:
    build: {context: ., dockerfile: Dockerfile}
    volumes: ["./conf/app.conf:/etc/app.conf:ro", "data:/var/lib/app", {type: bind, source: ./extra, target: /x}]
    env_file: app.env
"""
DOCKERFILE = """FROM debian
COPY --chown=app bin/ /usr/local/bin/
COPY --from=builder /out /out
ADD ["lib/a.py", "/opt/a.py"]
RUN echo hi
"""


def make_stack(tmp_path: Path) -> StackDefinition:
    (tmp_path / "docker-compose.yml").write_text(COMPOSE)
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    for rel, text in {
        "conf/app.conf": "port 80\n",
        "extra/one.txt": "1",
        "app.env": "A=1\n",
        "bin/run": "#!/bin/sh\n",
        "lib/a.py": "print(1)\n",
        "not-used.txt": "x",
    }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return StackDefinition.load(tmp_path / "docker-compose.yml")


def test_the_files_a_stack_mounts_and_builds_are_in_its_fingerprint(tmp_path):
    d = make_stack(tmp_path)
    fp = fingerprint(d, {"app": "sha256:1", "toxiproxy": "sha256:2"})
    assert sorted(fp["files"]) == ["Dockerfile", "app.env", "bin/run", "conf/app.conf", "extra/one.txt", "lib/a.py"]
    assert len(fp["id"]) == 12 and fp == fingerprint(d, {"toxiproxy": "sha256:2", "app": "sha256:1"})
    (tmp_path / "conf" / "app.conf").write_text("port 81\n")
    changed = fingerprint(d, {"app": "sha256:1", "toxiproxy": "sha256:2"})
    assert changed["id"] != fp["id"]
    assert differences(fp, changed) == ["files: conf/app.conf"]
    (tmp_path / "not-used.txt").write_text("y")  # nothing the stack uses: the same stack
    assert fingerprint(d, {"app": "sha256:1", "toxiproxy": "sha256:2"})["id"] == changed["id"]
    rebuilt = fingerprint(d, {"app": "sha256:9", "toxiproxy": "sha256:2"})
    assert differences(changed, rebuilt) == ["images: app"]
    (tmp_path / "docker-compose.yml").write_text(COMPOSE + "\n# a comment\n")
    assert "compose file" in differences(rebuilt, fingerprint(d, {"app": "sha256:9", "toxiproxy": "sha256:2"}))
    assert differences(None, fp) == ["fingerprint not recorded"] and differences(fp, fp) == []


def test_copy_sources_skip_flags_and_other_stages():
    assert _copy_sources(DOCKERFILE) == [["bin/"], ["lib/a.py"]]
    assert _copy_sources("COPY a \\\n  b /dst\n") == [["a", "b"]]


def test_the_audio_room_fingerprint_covers_its_configs_and_programs():
    d = find_stack("audio-room", near=ROOT)
    files = set(fingerprint(d, {})["files"])
    assert {
        "Dockerfile",
        "config/haproxy.cfg",
        "config/icecast-origin.xml",
        "bin/speaker",
        "room-api/roomapi.py",
        "../../fixtures/make-audio",
    } <= files
