"""One reader of compose files (chaos.stack.composefile): the stack definition, its fingerprint,
set-up's image builds and `deadair init` read a file the same way, as Docker Compose v2 does.
Before it they read it three ways, and a file Compose accepts could be a different stack to each."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.errors import EnvironmentNotReady
from chaos.stack import fingerprint as fingerprint_module
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
    (tmp_path / "room").mkdir()
    (tmp_path / "room" / "docker-compose.yml").write_text(f.read_text())
    for name, read in _four_readers(tmp_path).items():
        with pytest.raises((ComposeFileError, StackError, scaffold.ScaffoldError, EnvironmentNotReady)) as info:
            read()
        said = str(info.value) if not isinstance(info.value, scaffold.ScaffoldError) else str(info.value.problems[0])
        assert "docker-compose.yml:11:14: the alias *a5 makes the document more than" in said, (name, said)


def test_the_readers_limits_are_one_set(tmp_path):
    """Scaffold kept its own byte limit (1,000,000) beside the definition's (1 MiB): a file between
    the two was a stack to one and not to the other."""
    f = tmp_path / "docker-compose.yml"
    f.write_text("services:\n  a: {image: x}\n" + "#" * 1_020_000 + "\n")  # 1,020,026 bytes
    assert list(scaffold.read_compose(f).doc["services"]) == ["a"]
    f.write_text("services:\n  a: {image: x}\n" + "#" * (MAX_BYTES - 20) + "\n")
    with pytest.raises(scaffold.ScaffoldError, match=f"more than {MAX_BYTES:,} bytes"):
        scaffold.read_compose(f)
    with pytest.raises(StackError, match=f"more than {MAX_BYTES:,} bytes"):
        StackDefinition.load(f)


def read_compose_file_text(text: str, folder) -> dict:
    f = folder / "written.yml"
    f.write_text(text)
    return read_compose_file(f).doc


def test_compose_problems_are_on_the_line_an_editor_shows(tmp_path):
    """YAML's marks break lines at U+2028 too (allowed inside a quoted value); an editor and
    `grep -n` do not: a problem after one was reported a line too far."""
    f = tmp_path / "docker-compose.yml"
    f.write_text('services:\n  a:\n    image: x\n    environment: {NOTE: "one\u2028two"}\n  b:\timage: y\n')
    with pytest.raises(StackError, match=r"docker-compose.yml:5:11: YAML syntax"):
        StackDefinition.load(f)
    f.write_text("services:\n  a: {image: x}\n  b: {image: \x07}\n")
    with pytest.raises(ComposeFileError, match=r"docker-compose.yml:3:14: the character U\+0007 is not allowed"):
        read_compose_file(f)


def _four_readers(folder):
    """Each part of deadair that reads a compose file, on folder/room/docker-compose.yml."""
    f = folder / "room" / "docker-compose.yml"
    return {
        "definition": lambda: StackDefinition.load(f),
        "init": lambda: scaffold.read_compose(f),
        "set-up": lambda: stack_builds(folder),
        "reader": lambda: read_compose_file(f),
    }


BAD = 'services:\n  toxiproxy: {image: t, labels: {deadair.toxiproxy: "8474"}}\n  app: {image: %s}\n'


@pytest.mark.parametrize(
    "text, where",
    [
        (BAD % "!!int abc", ":3:16: cannot read this value as its tag says (invalid literal"),
        (BAD % "!!timestamp 2024-13-45", ":3:16: cannot read this value as its tag says (month must be"),
        (BAD % "!!float x", ":3:16: cannot read this value as its tag says (could not convert"),
        (BAD % "a\x01b", ":3:17: the character U+0001 is not allowed"),
        ("- a\n- b\n", ":1:1: is a list, not a compose file"),
        ("", ":1:1: is empty; expected a compose file"),
        ("# only a comment\n", ":1:1: is empty; expected a compose file"),
    ],
)
def test_a_value_that_cannot_be_built_is_located_by_every_reader(tmp_path, text, where):
    """`!!int abc` raised ValueError out of the reader: a traceback from `deadair validate`."""
    (tmp_path / "room").mkdir()
    (tmp_path / "room" / "docker-compose.yml").write_text(text)
    for name, read in _four_readers(tmp_path).items():
        with pytest.raises((ComposeFileError, StackError, scaffold.ScaffoldError, EnvironmentNotReady)) as info:
            read()
        said = str(info.value) if not isinstance(info.value, scaffold.ScaffoldError) else str(info.value.problems[0])
        assert f"docker-compose.yml{where}" in said, (name, said)


def test_numbers_are_read_as_compose_reads_them(tmp_path):
    """go-yaml v3 (Compose v2): underscores dropped, Go's base prefixes, a leading 0 octal; what
    fits no int64/uint64 and no float stays text; a repeated anchor rebinds."""
    f = tmp_path / "docker-compose.yml"
    huge = "1" * 5000
    f.write_text(
        f"x-a: &a 1\nx-b: &a 2\nservices:\n  a:\n    image: x\n    command: [017, 0b101, 1_000, 0X1F, -0o17, 08, 1e3,"
        f" .5, -.inf, 0x, 1.2.3, {huge}, 2024-01-01, 18446744073709551615, 18446744073709551616]\n"
        "    environment: {A: *a}\n"
    )
    doc = read_compose_file(f).doc
    got = doc["services"]["a"]["command"]
    assert got[:9] == [15, 5, 1000, 31, -15, 8.0, 1000.0, 0.5, float("-inf")]
    assert got[9:13] == ["0x", "1.2.3", huge, "2024-01-01"]
    assert got[13:] == [2**64 - 1, float(2**64)]
    assert doc["services"]["a"]["environment"] == {"A": 2}


def test_the_fingerprint_walks_a_mount_of_a_large_folder_only_as_far_as_it_hashes(tmp_path):
    """`/:/rootfs:ro` (node-exporter's mount) made the fingerprint list the whole disk before it
    kept its first 2,000 files; malformed entries (Compose would refuse them) raised TypeError."""
    big = tmp_path / "big"
    for i in range(4):
        (big / f"d{i}").mkdir(parents=True)
        for j in range(900):
            (big / f"d{i}" / f"f{j:04}").write_text("x")
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n"
        '  toxiproxy: {image: t, labels: {deadair.toxiproxy: "8474"}}\n'
        "  app:\n    image: a\n    volumes: ['./big:/rootfs:ro', 5, [x]]\n    env_file: 5\n    build: [a]\n"
        "  other: {image: b, volumes: 5}\n"
    )
    d = StackDefinition.load(tmp_path / "docker-compose.yml")
    walked: list[str] = []
    real_walk = fingerprint_module.os.walk

    def counting_walk(top, *args, **kwargs):
        for root, dirs, names in real_walk(top, *args, **kwargs):
            walked.append(root)
            yield root, dirs, names

    fingerprint_module.os.walk = counting_walk
    try:
        fp = fingerprint(d, {})
    finally:
        fingerprint_module.os.walk = real_walk
    assert len(fp["files"]) == fingerprint_module.MAX_FILES and "first 2000 hashed" in fp["note"]
    assert sorted(fp["files"])[0] == "big/d0/f0000" and sorted(fp["files"])[-1] == "big/d2/f0199"
    assert [str(Path(w).relative_to(tmp_path)) for w in walked] == ["big", "big/d0", "big/d1", "big/d2"]  # not d3
