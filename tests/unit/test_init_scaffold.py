"""`deadair init`: a stack definition for a user's own compose file (chaos.stack.scaffold), no engine."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from chaos.cli import main
from chaos.errors import ExperimentError
from chaos.language.loader import load_experiment
from chaos.stack import scaffold
from chaos.stack.composefile import Compose12Loader
from chaos.stack.definition import StackDefinition

USER = """\
version: "3.8"
x-common: &common
  restart: unless-stopped
services:
  web:
    <<: *common
    build: ./web
    image: shop/web:dev
    container_name: shop-web
    environment:
      REDIS_URL: redis://cache                 # no port: redis's default, 6379
      DATABASE_URL: postgres://u:pw@db:5432/shop
      SEARCH: "http://search:9200,http://search2:9200"
      QUEUE_HOST: queue
      QUEUE_PORT: "5672"
      LEGACY_DB: db                            # a host alone: cannot be rewritten
    ports: ["8080:8080", "127.0.0.1:9090:9090/udp"]
    volumes: ["./static:/srv/static:ro", "data:/data"]
    env_file: web.env
  worker:
    image: shop/web:dev
    command: ["worker", "--db", "db:5432"]
    environment: ["DATABASE_URL=postgres://db:5432/shop", "HOME"]
  db: {image: postgres:16}
  cache: {image: redis:7}
  queue: {image: rabbitmq:3}
  search: {image: elastic, expose: ["9200"]}
  search2: {image: elastic, expose: ["9200"]}
volumes:
  data: {}
"""


@pytest.fixture
def app(tmp_path: Path) -> Path:
    d = tmp_path / "shop"
    d.mkdir()
    (d / "docker-compose.yml").write_text(USER)
    return d


def targets(*texts: str) -> list[scaffold.Target]:
    return [scaffold.Target.parse(t, "--link") for t in texts]


def test_addresses_of_the_chosen_dependencies_go_through_their_links(app):
    links = targets("db:5432", "cache:6379", "queue:5672", "search:9200")
    sc = scaffold.plan(
        app / "docker-compose.yml", app, links, scaffold.Target.parse("web:8080/health", "--entry", True)
    )
    doc = yaml.safe_load(sc.files[sc.compose_out])
    web, worker = doc["services"]["web"], doc["services"]["worker"]
    assert web["environment"] == {
        "REDIS_URL": "redis://toxiproxy:8002",
        "DATABASE_URL": "postgres://u:pw@toxiproxy:8001/shop",
        "SEARCH": "http://toxiproxy:8004,http://search2:9200",  # search2 is no link: untouched
        "QUEUE_HOST": "toxiproxy",
        "QUEUE_PORT": "8003",
        "LEGACY_DB": "db",
    }
    assert worker["environment"] == ["DATABASE_URL=postgres://toxiproxy:8001/shop", "HOME"]
    assert any("LEGACY_DB=db names db without its port" in line for line in sc.by_hand)
    assert any(line.startswith("worker: its command names db") for line in sc.by_hand)
    assert doc["services"]["db"] == {"image": "postgres:16"}  # a dependency itself is not rewritten
    assert web["restart"] == "unless-stopped" and "container_name" not in web  # anchors resolved; no fixed name
    assert web["ports"] == [
        "127.0.0.1:${DEADAIR_PORT_WEB_8080:-}:8080",
        "127.0.0.1:${DEADAIR_PORT_WEB_9090:-}:9090/udp",
    ]


def test_the_generated_file_is_a_stack_whose_paths_still_point_at_the_users_files(app):
    sc = scaffold.plan(
        app / "docker-compose.yml", app, targets("db:5432"), scaffold.Target.parse("web:8080", "--entry")
    )
    sc.compose_out.parent.mkdir(parents=True)
    sc.compose_out.write_text(sc.files[sc.compose_out])
    stack = StackDefinition.load(sc.compose_out)
    assert stack.name == "shop" and stack.toxiproxy_service == "toxiproxy"
    assert {n: (lk.listen, lk.upstream) for n, lk in stack.links.items()} == {
        "entry-web": ("0.0.0.0:8100", "web:8080"),
        "db": ("0.0.0.0:8001", "db:5432"),
    }
    tox = stack.services["toxiproxy"]
    assert tox["image"] == "deadair/toxiproxy:2.12.0"
    assert tox["ports"] == [
        "127.0.0.1:${DEADAIR_PORT_TOXIPROXY_8474:-}:8474",
        "127.0.0.1:${DEADAIR_PORT_TOXIPROXY_8100:-}:8100",
    ]
    web = stack.services["web"]
    here = sc.compose_out.parent
    assert (here / web["build"]).resolve() == (app / "web").resolve()
    assert (here / web["env_file"]).resolve() == (app / "web.env").resolve()
    source, _, rest = web["volumes"][0].partition(":")
    assert (here / source).resolve() == (app / "static").resolve() and rest == "/srv/static:ro"
    assert web["volumes"][1] == "data:/data"  # a named volume stays
    assert (app / "docker-compose.yml").read_text() == USER


def test_a_dependency_no_environment_names_is_left_to_the_user(app):
    """search is known by its `expose`, but no address names it: its clients find it some other way."""
    (app / "docker-compose.yml").write_text(USER.replace("http://search:9200,http://search2:9200", "none"))
    sc = scaffold.plan(
        app / "docker-compose.yml", app, targets("search:9200"), scaffold.Target.parse("web:8080", "--entry")
    )
    assert not any("search" in line for line in sc.rewritten)
    assert (
        "no service's environment names search:9200: point its clients at toxiproxy:8001 (link search) by hand, "
        "or their traffic bypasses the link"
    ) in sc.by_hand


def test_init_writes_files_that_validate_and_refuses_to_overwrite(app, capsys):
    args = ["init", str(app), "--link", "db:5432", "--link", "cache:6379", "--entry", "web:8080/health"]
    assert main(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "web: DATABASE_URL=postgres://u:***@db:5432/shop -> postgres://u:***@toxiproxy:8001/shop" in out
    assert "NOT rewritten" in out and "LEGACY_DB=db" in out
    experiment = app / "experiments" / "shop-first.yaml"
    exp = load_experiment(experiment)
    assert exp.stack == "shop" and exp.listeners.count == 0
    assert exp.steady_state[0].probe.http["url"] == "${links.entry-web}/health" and exp.steady_state[0].tolerance == 200
    assert (exp.method[0].fault, exp.method[0].target) == ("link.latency", "db")
    assert "deadair_paths = experiments" in (app / "pytest.ini").read_text()
    assert main(["validate", str(experiment)]) == 0
    experiment.write_text(experiment.read_text() + "# mine\n")
    assert main(args) == 2  # every file exists: nothing overwritten
    err = capsys.readouterr().err
    assert "exists already; expected --force" in err and experiment.read_text().endswith("# mine\n")
    assert main([*args, "--force"]) == 0 and not experiment.read_text().endswith("# mine\n")


def test_an_existing_pytest_configuration_is_not_touched(app, capsys):
    (app / "pyproject.toml").write_text("[tool.pytest.ini_options]\naddopts = '-q'\n")
    assert main(["init", str(app), "--link", "db:5432", "--entry", "web:8080"]) == 0
    assert not (app / "pytest.ini").exists()
    assert 'add `deadair_paths = ["experiments"]` under [tool.pytest.ini_options]' in capsys.readouterr().out


def test_the_entry_defaults_to_the_one_published_port(tmp_path):
    (tmp_path / "compose.yaml").write_text(
        "services:\n  api: {image: x, ports: ['8000:8000'], environment: {DB: 'db:5432'}}\n  db: {image: y}\n"
    )
    sc = scaffold.plan(tmp_path / "compose.yaml", tmp_path, targets("db:5432"), None)
    assert sc.entry.label == "0.0.0.0:8100 -> api:8000"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--link", "nope:5432", "--entry", "web:8080"], "--link nope:5432: no service 'nope' in"),
        (["--link", "db:6000", "--entry", "web:8080"], "--link db:6000: service db has no port 6000"),
        (["--link", "db", "--entry", "web:8080"], "--link db: expected SERVICE:PORT"),
        (["--link", "db:5432", "--entry", "web:1"], "--entry web:1: service web has no port 1"),
        (["--link", "db:5432"], "which service:port do probes reach from the host?"),  # two published ports
        (["--link", "db:5432", "--entry", "web:8080", "--compose", "missing.yml"], "missing.yml: no such compose file"),
        (["--entry", "web:8080"], "expected at least one --link"),
    ],
)
def test_bad_input_is_exit_2_and_writes_nothing(app, capsys, monkeypatch, argv, message):
    (app / "docker-compose.yml").write_text(USER.replace('"8080:8080", ', '"8080:8080", "7000", '))
    monkeypatch.chdir(app)
    assert main(["init", *argv]) == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in app.iterdir()) == ["docker-compose.yml"]


def test_no_compose_file_and_a_deadair_stack_already_are_errors(tmp_path, capsys):
    assert main(["init", str(tmp_path), "--link", "db:5432"]) == 2
    assert "no compose file" in capsys.readouterr().err
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n  tox:\n    image: t\n    labels: {deadair.toxiproxy: '8474'}\n  db: {image: y, expose: [5432]}\n"
    )
    assert main(["init", str(tmp_path), "--link", "db:5432", "--entry", "db:5432"]) == 2
    assert "docker-compose.yml:4:5: service tox already carries deadair.toxiproxy" in capsys.readouterr().err
    (tmp_path / "docker-compose.yml").write_text("services: [\n")
    assert main(["init", str(tmp_path), "--link", "db:5432"]) == 2
    assert "docker-compose.yml:2:1: YAML syntax" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docker-compose.yml"]


def test_scaffold_errors_are_experiment_errors_with_exit_2():
    with pytest.raises(ExperimentError) as info:
        scaffold.Target.parse("db:99999", "--link")
    assert info.value.exit_code == 2


def test_at_a_terminal_with_no_link_init_asks(app, capsys, monkeypatch):
    import io

    import chaos.pipes as pipes

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal("db:5432\n"))
    monkeypatch.setattr(pipes.ClosedPipeTolerant, "isatty", lambda self: True)
    assert main(["init", str(app), "--entry", "web:8080"]) == 0
    out = capsys.readouterr().out
    assert "db:5432" in out.split("dependencies to put behind links")[0]  # the candidates, before the question
    assert "deadair.link.db: 0.0.0.0:8001 -> db:5432" in (app / "compose" / "shop" / "docker-compose.yml").read_text()


def _init(d: Path, *argv: str) -> int:
    return main(["init", str(d), *argv])


def test_values_are_written_as_compose_reads_them(tmp_path):
    """Compose reads YAML 1.2: `22:22` is text (not 1342), `yes` is text, `true` a boolean, an
    empty value null (taken from the shell); numbers as go-yaml reads them (`017` is octal 15, as
    YAML 1.1 says too; `0b101` is 5, `1_000` is 1000). The generated file keeps each value, read
    either way."""
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n"
        "  web:\n"
        "    image: w\n"
        "    command: [serve, 22:22, 0o17, 017, 1e3, 2024-01-01, 0b101, 1_000]\n"
        "    ports: ['8080:8080']\n"
        "    environment:\n"
        "      DB: db:5432\n"
        "      ENABLED: true\n"
        "      DEBUG: yes\n"
        "      TIME: 10:30\n"
        "      PASSTHRU:\n"
        "  other:\n"
        "    image: o\n"
        "    environment: {FLAG: on, N: 0x1F}\n"
        "  db: {image: d}\n"
    )
    sc = scaffold.plan(tmp_path / "docker-compose.yml", tmp_path, targets("db:5432"), None)
    text = sc.files[sc.compose_out]
    for loader in (yaml.SafeLoader, Compose12Loader):  # compose v1 (YAML 1.1) and v2 (1.2)
        doc = yaml.load(text, Loader=loader)
        web, other = doc["services"]["web"], doc["services"]["other"]
        assert web["command"] == ["serve", "22:22", 15, 15, 1000.0, "2024-01-01", 5, 1000], loader
        assert web["environment"] == {
            "DB": "toxiproxy:8001",
            "ENABLED": True,
            "DEBUG": "yes",
            "TIME": "10:30",
            "PASSTHRU": None,
        }, loader
        assert other["environment"] == {"FLAG": "on", "N": 31}, loader


def test_hostile_compose_files_are_located_errors(tmp_path, capsys):
    f = tmp_path / "docker-compose.yml"
    bomb = ["services:", "  db: {image: d, expose: [5432]}", "  web:", "    image: w", "    command:"]
    bomb += ['      - &a0 ["lol"]']
    bomb += [f"      - &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    cases = {
        "\n".join(bomb) + "\n": "each alias counts as a copy of what it names",
        "services: " + "[" * 5000 + "]" * 5000 + "\n": "levels deep",
        "services:\n"
        + "".join(f"  s{i}: {{image: x}}\n" for i in range(scaffold.MAX_SERVICES + 1)): "services; expected",
    }
    for text, message in cases.items():
        f.write_text(text)
        assert _init(tmp_path, "--link", "db:5432", "--entry", "db:5432") == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docker-compose.yml"]


def test_many_services_are_read_with_one_pattern(tmp_path):
    """400 services whose environments name each other: every address found (was one regex per pair)."""
    spec = {f"s{i}": {"image": "x", "environment": {"NEXT": f"s{i + 1}:{7000 + i}"}} for i in range(400)}
    ports = scaffold.known_ports({"services": spec})
    assert ports["s1"] == {7000} and ports["s399"] == {7398} and ports["s0"] == set()


@pytest.mark.parametrize("name", ["2024", "true", "null", "on"])
def test_names_that_yaml_reads_as_other_things_stay_names(app, name):
    assert _init(app, "--link", "db:5432", "--entry", 'web:8080/a"b\\c', "--name", name) == 0
    exp = load_experiment(app / "experiments" / f"{name}-first.yaml")
    assert exp.stack == name and exp.steady_state[0].probe.http["url"] == '${links.entry-web}/a"b\\c'


def test_bad_places_and_names_are_located_errors_and_write_nothing(app, tmp_path, capsys, monkeypatch):
    link = ["--link", "db:5432", "--entry", "web:8080"]
    checks = [
        (["--entry", "web:8080/${x}", "--link", "db:5432"], "expected SERVICE:PORT[/PATH]"),
        ([*link, "--name", "x" * 300], "a stack name of 300 characters"),
    ]
    for argv, message in checks:
        assert _init(app, *argv) == 2
        assert message in capsys.readouterr().err
    (app / "experiments").write_text("a file where a folder goes")
    assert _init(app, *link) == 2
    assert "experiments: is not a folder" in capsys.readouterr().err
    assert sorted(p.name for p in app.iterdir()) == ["docker-compose.yml", "experiments"]
    monkeypatch.chdir(app)
    assert main(["init", str(app / "experiments"), *link]) == 2  # DIR is a file
    err = capsys.readouterr().err
    assert "is not a folder" in err and "Traceback" not in err
    assert sorted(p.name for p in app.iterdir()) == ["docker-compose.yml", "experiments"]


def test_the_users_own_toxiproxy_services_keep_their_names(tmp_path):
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n  toxiproxy: {image: t}\n  deadair-toxiproxy: {image: t}\n"
        "  123: {image: w, ports: ['80:80'], environment: {DB: 'db:5432'}}\n  db: {image: d}\n"
    )
    sc = scaffold.plan(tmp_path / "docker-compose.yml", tmp_path, targets("db:5432"), None)
    doc = yaml.safe_load(sc.files[sc.compose_out])
    assert doc["services"]["toxiproxy"] == {"image": "t"} and doc["services"]["deadair-toxiproxy"] == {"image": "t"}
    assert "deadair.toxiproxy" in doc["services"]["deadair-toxiproxy-2"]["labels"]
    assert doc["services"]["123"]["environment"] == {"DB": "deadair-toxiproxy-2:8001"}


def test_ctrl_d_at_the_question_is_exit_2(app, capsys, monkeypatch):
    import io

    import chaos.pipes as pipes

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal(""))
    monkeypatch.setattr(pipes.ClosedPipeTolerant, "isatty", lambda self: True)
    assert _init(app, "--entry", "web:8080") == 2
    assert "--link: no answer" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (".pytest.ini", ""),
        ("pytest.toml", "[pytest]\n"),
        ("pyproject.toml", "[tool.pytest]\nminversion = '9'\n"),
        ("tox.ini", "[pytest]\naddopts = -q\n"),
        ("setup.cfg", "[tool:pytest]\naddopts = -q\n"),
    ],
)
def test_every_pytest_configuration_is_left_alone(app, capsys, name, text):
    (app / name).write_text(text)
    assert _init(app, "--link", "db:5432", "--entry", "web:8080") == 0
    assert not (app / "pytest.ini").exists()
    assert f"{app / name} configures pytest already" in capsys.readouterr().out


def test_host_ports_of_every_shape_move_to_ports_deadair_picks(tmp_path):
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n  web:\n    image: w\n    environment: {DB: 'db:5432'}\n    ports:\n"
        "      - {target: 8080, published: 8080}\n      - {target: 53, published: 53, protocol: udp}\n"
        "      - 9000-9001:9000-9001\n      - 5353:5353/udp\n  db: {image: d}\n"
    )
    sc = scaffold.plan(
        tmp_path / "docker-compose.yml", tmp_path, targets("db:5432"), scaffold.Target.parse("web:8080", "--entry")
    )
    assert yaml.safe_load(sc.files[sc.compose_out])["services"]["web"]["ports"] == [
        "127.0.0.1:${DEADAIR_PORT_WEB_8080:-}:8080",
        "127.0.0.1:${DEADAIR_PORT_WEB_53:-}:53/udp",
        "127.0.0.1:${DEADAIR_PORT_WEB_5353:-}:5353/udp",
    ]
    assert any("9000-9001" in note and "not published" in note for note in sc.notes)


def test_an_address_with_a_shell_value_first_is_listed_for_the_user(app):
    (app / "docker-compose.yml").write_text(USER.replace("redis://cache ", "${REDIS_URL:-redis://cache:6379} "))
    sc = scaffold.plan(
        app / "docker-compose.yml", app, targets("cache:6379"), scaffold.Target.parse("web:8080", "--entry")
    )
    assert yaml.safe_load(sc.files[sc.compose_out])["services"]["web"]["environment"]["REDIS_URL"] == (
        "${REDIS_URL:-redis://toxiproxy:8001}"
    )
    assert any(line.startswith("web: REDIS_URL is ${REDIS_URL:-...}: only its default") for line in sc.by_hand)


def test_init_into_a_new_folder_uses_the_compose_file_here(app, capsys, monkeypatch):
    monkeypatch.chdir(app)
    assert main(["init", "out", "--link", "db:5432", "--entry", "web:8080"]) == 0, capsys.readouterr().err
    assert (app / "out" / "compose" / "shop" / "docker-compose.yml").is_file()


def test_a_dependency_in_a_profile_is_started_by_the_generated_file(tmp_path):
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n  web: {image: w, ports: ['80:80'], environment: {DB: 'db:5432'}}\n"
        "  db: {image: d, profiles: [full]}\n  extra: {image: e, profiles: [debug]}\n"
    )
    sc = scaffold.plan(tmp_path / "docker-compose.yml", tmp_path, targets("db:5432"), None)
    services = yaml.safe_load(sc.files[sc.compose_out])["services"]
    assert "profiles" not in services["db"] and services["extra"]["profiles"] == ["debug"]
    assert any(note.startswith("db: profiles ['full'] dropped") for note in sc.notes)


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_init_never_overwrites_the_users_own_compose_file(tmp_path, capsys, force):
    user = tmp_path / "compose" / "shop" / "docker-compose.yml"
    user.parent.mkdir(parents=True)
    user.write_text(USER)
    argv = ["--compose", str(user), "--link", "db:5432", "--entry", "web:8080", *force]
    assert _init(tmp_path, *argv) == 2
    assert "would replace this compose file" in capsys.readouterr().err
    assert user.read_text() == USER


def test_a_long_string_behind_many_aliases_is_a_located_error(tmp_path, capsys):
    """One 150 KB string reached through nine aliases: 1.35 MB of text once expanded (a 400 KB one
    under 5 levels of 9 aliases took 22 s and 2.9 GB before the characters were counted)."""
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n  db: {image: d, expose: [5432]}\n  web:\n    image: w\n    command:\n"
        f"      - &s {'x' * 150_000}\n      - [{', '.join(['*s'] * 9)}]\n"
    )
    assert _init(tmp_path, "--link", "db:5432", "--entry", "db:5432") == 2
    err = capsys.readouterr().err
    assert "characters (each alias counts as a copy of what it names)" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docker-compose.yml"]


def test_a_rewritten_multi_line_value_keeps_the_header_a_comment(tmp_path):
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n  web:\n    image: w\n    ports: ['80:80']\n    environment:\n"
        "      ML: |\n        line one db:5432\n        line two: [\n  db: {image: d}\n"
    )
    sc = scaffold.plan(tmp_path / "docker-compose.yml", tmp_path, targets("db:5432"), None)
    text = sc.files[sc.compose_out]
    doc = yaml.safe_load(text)
    assert doc["services"]["web"]["environment"]["ML"] == "line one toxiproxy:8001\nline two: [\n"
    header = text[: text.index("\nservices:")].split("\n")
    assert all(line.startswith("#") for line in header), header
    assert any("ML=line one db:5432\\nline two" in line for line in header)


def test_quoted_strings_either_yaml_reads_as_numbers_stay_strings(tmp_path):
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n  web:\n    image: w\n    ports: ['80:80']\n    environment:\n      DB: db:5432\n"
        '      A: "1e3"\n      B: "7E10"\n      C: "0o17"\n      D: "1.5e3"\n      E: "yes"\n'
        '      F: "1_000"\n      G: "0b101"\n      H: "+0X1F"\n      I: "017"\n  db: {image: d}\n'
    )
    sc = scaffold.plan(tmp_path / "docker-compose.yml", tmp_path, targets("db:5432"), None)
    for loader in (yaml.SafeLoader, Compose12Loader):
        env = yaml.load(sc.files[sc.compose_out], Loader=loader)["services"]["web"]["environment"]
        assert env == {
            "DB": "toxiproxy:8001",
            **{"A": "1e3", "B": "7E10", "C": "0o17", "D": "1.5e3", "E": "yes"},
            **{"F": "1_000", "G": "0b101", "H": "+0X1F", "I": "017"},
        }


def test_a_service_off_the_stacks_network_is_no_link_and_keeps_its_addresses(tmp_path, capsys):
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n  web:\n    image: w\n    network_mode: host\n    environment: {DB: 'db:5432'}\n"
        "  side:\n    image: s\n    network_mode: 'service:web'\n    environment: {DB: 'db:5432'}\n"
        "  api: {image: a, ports: ['80:80'], environment: {DB: 'db:5432'}}\n  db: {image: d}\n"
    )
    for entry in ("web:80", "side:80"):
        assert _init(tmp_path, "--link", "db:5432", "--entry", entry) == 2
        err = capsys.readouterr().err
        assert f"docker-compose.yml:{4 if entry == 'web:80' else 8}:5: --entry {entry}: service" in err, err
    sc = scaffold.plan(tmp_path / "docker-compose.yml", tmp_path, targets("db:5432"), None)
    services = yaml.safe_load(sc.files[sc.compose_out])["services"]
    assert services["web"]["environment"] == {"DB": "db:5432"} and services["side"]["environment"] == {"DB": "db:5432"}
    assert services["api"]["environment"] == {"DB": "toxiproxy:8001"}


def test_long_form_env_files_and_includes_still_point_at_the_users_files(app):
    (app / "docker-compose.yml").write_text(
        "include:\n  - ./infra.yml\n  - {path: [./a.yml, ./b.yml], env_file: ./inc.env}\n"
        + USER.split("\n", 1)[1].replace("env_file: web.env", "env_file: [{path: ./web.env, required: true}, x.env]")
    )
    sc = scaffold.plan(
        app / "docker-compose.yml", app, targets("db:5432"), scaffold.Target.parse("web:8080", "--entry")
    )
    doc = yaml.safe_load(sc.files[sc.compose_out])
    assert doc["services"]["web"]["env_file"] == [{"path": "../../web.env", "required": True}, "../../x.env"]
    assert doc["include"] == ["../../infra.yml", {"path": ["../../a.yml", "../../b.yml"], "env_file": "../../inc.env"}]


def test_a_healthcheck_that_names_a_link_is_left_off_it(tmp_path):
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n  web:\n    image: w\n    ports: ['80:80']\n    environment: {DB: 'db:5432'}\n"
        "    healthcheck: {test: [CMD, pg_isready, -h, db]}\n  db: {image: d}\n"
    )
    sc = scaffold.plan(tmp_path / "docker-compose.yml", tmp_path, targets("db:5432"), None)
    assert not any("healthcheck" in line for line in sc.by_hand)
    assert any(n.startswith("web: its healthcheck names db: leave it so") and "rollback" in n for n in sc.notes)


def test_a_missing_image_of_the_users_says_pull_or_build_not_setup():
    from types import SimpleNamespace

    from docker.errors import ImageNotFound

    from chaos.errors import EnvironmentNotReady
    from chaos.stack.compose import Stack

    class Images:
        def get(self, image: str) -> None:
            raise ImageNotFound(image)

    stack = Stack.__new__(Stack)
    stack.definition = SimpleNamespace(images=["deadair/toxiproxy:2.12.0", "redis:7"])  # type: ignore[assignment]
    stack.__dict__["docker"] = SimpleNamespace(images=Images())
    with pytest.raises(EnvironmentNotReady) as raised:
        stack.check_images()
    assert str(raised.value) == (
        "image(s) deadair/toxiproxy:2.12.0 not built; run `deadair setup`; "
        "image(s) redis:7 not present here; `docker pull` or build them"
    )


def test_what_the_needed_services_depend_on_leaves_its_profiles_and_images_are_pulled(tmp_path):
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n  web: {image: w, ports: ['80:80'], environment: {DB: 'db:5432'}, depends_on: [migrate]}\n"
        "  migrate: {image: m, profiles: [tools], depends_on: {seed: {condition: service_started}}}\n"
        "  seed: {image: s, profiles: [tools]}\n  db: {image: 'postgres:16'}\n  extra: {image: e, profiles: [x]}\n"
        "  app: {build: ., profiles: [x]}\n"
    )
    sc = scaffold.plan(tmp_path / "docker-compose.yml", tmp_path, targets("db:5432"), None)
    services = yaml.safe_load(sc.files[sc.compose_out])["services"]
    assert "profiles" not in services["migrate"] and "profiles" not in services["seed"]
    assert services["extra"]["profiles"] == ["x"]
    assert any(n.startswith("seed: profiles ['tools'] dropped") and "depends on it" in n for n in sc.notes)
    assert any(
        n.startswith("deadair starts the stack without pulling") and "`docker pull` e m postgres:16 s w" in n
        for n in sc.notes
    )


def test_a_pytest_configuration_above_dir_counts_and_a_rerun_does_not_ask_for_its_own_lines(tmp_path, capsys):
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options]\naddopts = '-q'\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "docker-compose.yml").write_text(USER)
    argv = ["--link", "db:5432", "--entry", "web:8080"]
    assert _init(sub, *argv) == 0
    assert not (sub / "pytest.ini").exists()
    assert f"{tmp_path / 'pyproject.toml'} configures pytest already" in capsys.readouterr().out
    (tmp_path / "pyproject.toml").unlink()
    assert _init(sub, *argv, "--force") == 0 and (sub / "pytest.ini").is_file()
    capsys.readouterr()
    assert _init(sub, *argv, "--force") == 0
    assert "configures pytest already" not in capsys.readouterr().out


def test_compose_yaml_is_preferred_as_compose_does_and_an_override_is_mentioned(app):
    (app / "compose.yaml").write_text(USER.replace("  web:\n", "  front:\n    image: f\n  web:\n"))
    (app / "docker-compose.override.yml").write_text("services: {}\n")
    assert scaffold.find_compose_file(app) == app / "compose.yaml"
    sc = scaffold.plan(app / "compose.yaml", app, targets("db:5432"), scaffold.Target.parse("web:8080", "--entry"))
    assert "front" in yaml.safe_load(sc.files[sc.compose_out])["services"]
    assert any(n.startswith(f"{app / 'docker-compose.override.yml'} is not read") for n in sc.notes)


def test_passwords_in_rewritten_urls_are_masked_where_printed(app):
    sc = scaffold.plan(
        app / "docker-compose.yml", app, targets("db:5432"), scaffold.Target.parse("web:8080", "--entry")
    )
    text = sc.files[sc.compose_out]
    assert "DATABASE_URL=postgres://u:***@db:5432/shop -> postgres://u:***@toxiproxy:8001/shop" in text
    assert "pw@" not in text.split("\nservices:")[0] and not any("pw@" in line for line in sc.rewritten)
    assert (
        yaml.safe_load(text)["services"]["web"]["environment"]["DATABASE_URL"] == "postgres://u:pw@toxiproxy:8001/shop"
    )


def test_the_header_says_the_command_that_regenerates_the_file(app):
    sc = scaffold.plan(
        app / "docker-compose.yml",
        app,
        targets("db:5432", "cache:6379"),
        scaffold.Target.parse("web:8080/health", "--entry", True),
        "my shop",
    )
    assert (
        f"#   deadair init {app} --compose {app / 'docker-compose.yml'} --link db:5432 --link cache:6379 "
        "--entry web:8080/health --name 'my shop' --force\n"
    ) in sc.files[sc.compose_out]
