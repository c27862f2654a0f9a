"""One reader of compose files (chaos.stack.composefile): the stack definition, its fingerprint,
set-up's image builds and `deadair init` read a file the same way, as Docker Compose v2 does.
Before it they read it three ways, and a file Compose accepts could be a different stack to each."""

from __future__ import annotations

import pytest

from chaos.errors import EnvironmentNotReady
from chaos.stack import scaffold
from chaos.stack.composefile import MAX_BYTES, MAX_VALUES, ComposeFileError, read_compose_file
from chaos.stack.definition import StackDefinition, StackError
from chaos.stack.fingerprint import fingerprint
from chaos.stack.provision import stack_builds
from tests.unit.test_init_scaffold import targets

TABBED = (
    "services:\n"
    "  toxiproxy:\n"
    "    image:\ttox\n"
    '    labels: {deadair.toxiproxy:\t"8474", deadair.link.app: "0.0.0.0:8001 -> app:80"}\n'
    "  app:\n"
    "    image: app:1\n"
    "    build:\t{context: .}\n"
    "    configs: [appconf]\n"
    "configs:\n"
    "  appconf:\n"
    "    file:\t./app.conf\t# a tab between tokens, as libyaml and Compose allow\n"
)


def test_a_config_behind_a_tab_is_in_the_fingerprint(tmp_path):
    """The fingerprint re-read the file with yaml.safe_load, which refuses the tab: the config
    file fell out of the fingerprint, and a changed config was not a changed stack."""
    (tmp_path / "docker-compose.yml").write_text(TABBED)
    (tmp_path / "app.conf").write_text("port 80\n")
    (tmp_path / "Dockerfile").write_text("FROM debian\n")
    d = StackDefinition.load(tmp_path / "docker-compose.yml")
    before = fingerprint(d, {})
    assert "app.conf" in before["files"]
    (tmp_path / "app.conf").write_text("port 81\n")
    assert fingerprint(d, {})["id"] != before["id"]


def test_set_up_reads_the_builds_of_a_file_with_tabs(tmp_path):
    (tmp_path / "room").mkdir()
    (tmp_path / "room" / "docker-compose.yml").write_text(TABBED)
    assert stack_builds(tmp_path) == [(str((tmp_path / "room").resolve()), "Dockerfile", "app:1")]


def test_set_up_says_which_compose_file_is_broken_not_a_traceback(tmp_path):
    (tmp_path / "room").mkdir()
    (tmp_path / "room" / "docker-compose.yml").write_text("services:\n  a:\timage: x\n")
    with pytest.raises(EnvironmentNotReady, match=r"docker-compose.yml:2:11: YAML syntax"):
        stack_builds(tmp_path)


def test_init_reads_a_file_with_the_tabs_compose_allows(tmp_path):
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n  web:\n    image:\tw\n    ports:\t['8000:80']\n    environment:\n      DB:\tdb:5432\n  db: {image: d,\texpose: [5432]}\n"
    )
    sc = scaffold.plan(tmp_path / "docker-compose.yml", tmp_path, targets("db:5432"), None)
    written = read_compose_file_text(sc.files[sc.compose_out], tmp_path)
    assert written["services"]["web"]["environment"]["DB"] == "toxiproxy:8001"


def test_the_definition_reads_yaml_1_2_as_compose_does(tmp_path):
    """`on:` is a service named "on" to Compose v2 (YAML 1.2); YAML 1.1 made it True, and a link
    to it pointed at no service."""
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n"
        '  toxiproxy: {image: t, labels: {deadair.toxiproxy: "8474", deadair.link.on: "0.0.0.0:8001 -> on:22"}}\n'
        "  on: {image: sshd, ports: [22:22]}\n"
    )
    d = StackDefinition.load(tmp_path / "docker-compose.yml")
    assert d.links["on"].upstream_node == "on" and d.nodes == ["on"]
    assert d.services["on"]["ports"] == ["22:22"]  # not 1342, YAML 1.1's base 60


def test_every_reader_bounds_an_alias_bomb_at_its_place(tmp_path):
    lines = ["services:", "  a:", "    image: x", "    command:", '      - &a0 ["lol"]']
    lines += [f"      - &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 7)]
    f = tmp_path / "docker-compose.yml"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(ComposeFileError) as info:
        read_compose_file(f)
    assert (info.value.line, info.value.column) == (
        11,
        14,
    )  # *a5 names 125,479 values: its first copy here crosses 200,000
    assert f"more than {MAX_VALUES:,} values" in str(info.value)
    with pytest.raises(StackError, match=r"docker-compose.yml:11:14: the alias \*a5"):
        StackDefinition.load(f)


def test_a_file_that_is_not_a_mapping_is_refused_by_every_reader(tmp_path):
    f = tmp_path / "docker-compose.yml"
    for text in ("- a\n- b\n", "", "just text\n"):
        f.write_text(text)
        with pytest.raises(StackError, match="not a compose file"):
            StackDefinition.load(f)


def test_the_readers_limits_are_one_set(tmp_path):
    """Scaffold kept its own byte limit (1,000,000) beside the definition's (1 MiB): a file between
    the two was a stack to one and not to the other."""
    f = tmp_path / "docker-compose.yml"
    f.write_text("services:\n  a: {image: x}\n" + "#" * 1_020_000 + "\n")  # 1,020,026 bytes
    doc, _ = scaffold.read_compose(f)
    assert list(doc["services"]) == ["a"]
    f.write_text("services:\n  a: {image: x}\n" + "#" * (MAX_BYTES - 20) + "\n")
    with pytest.raises(scaffold.ScaffoldError, match=f"more than {MAX_BYTES:,} bytes"):
        scaffold.read_compose(f)
    with pytest.raises(StackError, match=f"more than {MAX_BYTES:,} bytes"):
        StackDefinition.load(f)


def read_compose_file_text(text: str, folder) -> dict:
    f = folder / "written.yml"
    f.write_text(text)
    return read_compose_file(f).doc
