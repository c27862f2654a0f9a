"""`deadair init`: a stack definition for a user's own compose file (chaos.stack.scaffold), no engine."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from chaos.cli import main
from chaos.errors import ExperimentError
from chaos.language.loader import load_experiment
from chaos.stack import scaffold
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
    assert web["ports"] == ["127.0.0.1:${DEADAIR_PORT_WEB_8080:-}:8080", "127.0.0.1:9090:9090/udp"]


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
    assert "web: DATABASE_URL=postgres://u:pw@db:5432/shop -> postgres://u:pw@toxiproxy:8001/shop" in out
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
    assert "docker-compose.yml:2:1: not valid YAML" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docker-compose.yml"]


def test_scaffold_errors_are_experiment_errors_with_exit_2():
    with pytest.raises(ExperimentError) as info:
        scaffold.Target.parse("db:99999", "--link")
    assert info.value.exit_code == 2


def test_at_a_terminal_with_no_link_init_asks(app, capsys, monkeypatch):
    import io

    import chaos.cli as cli

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal("db:5432\n"))
    monkeypatch.setattr(cli._ClosedPipeTolerant, "isatty", lambda self: True)
    assert main(["init", str(app), "--entry", "web:8080"]) == 0
    out = capsys.readouterr().out
    assert "db:5432" in out.split("dependencies to put behind links")[0]  # the candidates, before the question
    assert "deadair.link.db: 0.0.0.0:8001 -> db:5432" in (app / "compose" / "shop" / "docker-compose.yml").read_text()
