"""Chaos Toolkit experiments: what is supported translates; what is not is an error at its line."""

import json
import tracemalloc
from pathlib import Path

import pytest

from chaos.cli import main
from chaos.errors import ExperimentError
from chaos.language.loader import load_experiment

ROOT = Path(__file__).resolve().parents[2]
CTK = ROOT / "experiments" / "chaostoolkit" / "room-api-slow-redis.json"


def test_documentation_style_experiment_translates():
    exp = load_experiment(CTK)
    assert exp.source == "chaostoolkit" and exp.listeners.count == 0
    health = exp.steady_state[0]
    assert health.probe.kind == "http" and health.probe.http["url"] == "${links.entry-api}/health"
    assert health.tolerance == 200 and health.when == ("before", "during") and health.every is None
    fault = exp.method[0]
    assert (fault.fault, fault.target, fault.params["latency"], fault.params["jitter"]) == (
        "link.latency",
        "api-redis",
        200,
        20,
    )
    assert fault.duration == 6.0  # until the end of the method: the rollback removes it
    probe = exp.method[1]
    assert probe.kind == "probe" and probe.at == 3.0 and probe.probe.process["path"] == "curl"


def _ctk(tmp_path: Path, **changes) -> Path:
    doc = json.loads(CTK.read_text())
    for key, value in changes.items():
        doc[key] = value
    f = tmp_path / "ctk.json"
    f.write_text(json.dumps(doc, indent=2))
    return f


def test_unsupported_providers_are_errors_at_their_line(tmp_path):
    method = [
        {
            "type": "action",
            "name": "kill-pods",
            "provider": {"type": "python", "module": "chaosk8s.pod.actions", "func": "terminate_pods", "arguments": {}},
        }
    ]
    f = _ctk(tmp_path, method=method)
    with pytest.raises(ExperimentError) as info:
        load_experiment(f)
    msgs = [str(p) for p in info.value.problems]
    module_line = next(i for i, text in enumerate(f.read_text().splitlines(), 1) if "chaosk8s" in text)
    provider_line = module_line - 2  # json.dumps(indent=2): "provider": {, "type": ..., "module": ...
    assert any(
        m.startswith(f"{f}:{provider_line}:") and "chaosk8s.pod.actions.terminate_pods is not supported" in m
        for m in msgs
    ), msgs


def test_other_unsupported_parts(tmp_path):
    with pytest.raises(ExperimentError, match="secrets are not supported"):
        load_experiment(_ctk(tmp_path, secrets={"k": {"token": "x"}}))
    hypo = json.loads(CTK.read_text())["steady-state-hypothesis"]
    hypo["probes"][0]["tolerance"] = {
        "type": "probe",
        "name": "x",
        "provider": {"type": "python", "module": "m", "func": "f"},
    }
    with pytest.raises(ExperimentError, match="tolerances of type probe"):
        load_experiment(_ctk(tmp_path, **{"steady-state-hypothesis": hypo}))
    rollbacks = [
        {
            "type": "action",
            "name": "r",
            "provider": {
                "type": "python",
                "module": "chaostoxi.proxy.actions",
                "func": "delete_proxy",
                "arguments": {"proxy_name": "mic"},
            },
        }
    ]
    with pytest.raises(ExperimentError, match="rollback chaostoxi.proxy.actions.delete_proxy is not supported"):
        load_experiment(_ctk(tmp_path, rollbacks=rollbacks))
    with pytest.raises(ExperimentError, match="unknown key 'frobnicate'"):
        load_experiment(_ctk(tmp_path, frobnicate=1))


def test_disable_then_enable_proxy_is_one_link_down(tmp_path):
    method = [
        {
            "type": "action",
            "name": "cut",
            "provider": {
                "type": "python",
                "module": "chaostoxi.proxy.actions",
                "func": "disable_proxy",
                "arguments": {"proxy_name": "mic"},
            },
            "pauses": {"after": 4},
        },
        {
            "type": "action",
            "name": "restore",
            "provider": {
                "type": "python",
                "module": "chaostoxi.proxy.actions",
                "func": "enable_proxy",
                "arguments": {"proxy_name": "mic"},
            },
            "pauses": {"after": 2},
        },
    ]
    exp = load_experiment(_ctk(tmp_path, method=method, rollbacks=[]))
    assert [(s.fault, s.target, s.at, s.duration) for s in exp.method] == [("link.down", "mic", 0.0, 4.0)]


def test_import_writes_deadair_yaml_that_loads(tmp_path, capsys):
    out = tmp_path / "imported.yaml"
    assert main(["import", str(CTK), "-o", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# translated from the Chaos Toolkit experiment")
    (tmp_path / "compose").symlink_to(ROOT / "compose")
    exp = load_experiment(out)
    assert exp.source == "deadair" and exp.method[0].fault == "link.latency"
    assert main(["import", str(ROOT / "experiments" / "mic-cut-hold-music.yaml")]) == 2
    assert "not a Chaos Toolkit experiment" in capsys.readouterr().err


OWN_STACK = """services:
  toxiproxy:
    image: deadair/toxiproxy:2.12.0
    labels:
      deadair.toxiproxy: "8474"
      deadair.link.web-db: "0.0.0.0:8001 -> db:6379"
      deadair.link.entry-web: "0.0.0.0:8100 -> web:8080"
  web: {image: deadair/audio-room:latest}
  db: {image: deadair/audio-room:latest}
"""


def _own_stack_ctk(tmp_path: Path) -> Path:
    """A Chaos Toolkit experiment for a stack of the user's own (links web-db and entry-web)."""
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "docker-compose.yml").write_text(OWN_STACK)
    doc = json.loads(CTK.read_text())
    doc["configuration"] = {
        "web_url": {"type": "env", "key": "DEADAIR_LINK_ENTRY_WEB_URL"},
        "delay_ms": {"type": "env", "key": "CLI16_UNSET_DELAY"},  # no default: only --var can set it
    }
    text = (
        json.dumps(doc, indent=2).replace("${room_api_url}", "${web_url}").replace("${redis_delay_ms}", "${delay_ms}")
    )
    f = tmp_path / "ctk.json"
    f.write_text(text.replace('"api-redis"', '"web-db"'))
    return f


def test_import_checks_against_the_named_stack_and_writes_it(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CLI16_UNSET_DELAY", raising=False)
    f = _own_stack_ctk(tmp_path)
    out = tmp_path / "out" / "imported.yaml"
    out.parent.mkdir()
    assert main(["import", str(f), "-o", str(out), "--var", "delay_ms:int=300"]) == 2  # against audio-room
    err = capsys.readouterr().err
    assert "'web-db' is not a link of stack audio-room" in err and not out.exists()
    monkeypatch.chdir(tmp_path)
    assert main(["import", str(f), "-o", str(out), "--stack", "nosuch", "--var", "delay_ms:int=300"]) == 2  # a name
    assert "no stack named 'nosuch'" in capsys.readouterr().err and not out.exists()
    assert main(["import", str(f), "-o", str(out), "--stack", "shop", "--var", "delay_ms:int=300"]) == 0  # ./shop
    assert "stack: ../shop\n" in out.read_text()  # a folder here is that folder, as --help says
    out.unlink()
    args = ["import", str(f), "-o", str(out), "--stack", "shop/docker-compose.yml", "--var", "delay_ms:int=300"]
    assert main(args) == 0, capsys.readouterr().err
    assert "stack: ../shop/docker-compose.yml" in out.read_text()  # relative to the output, where it is loaded
    monkeypatch.chdir(ROOT)
    exp = load_experiment(out)
    assert exp.stack == "../shop/docker-compose.yml" and exp.method[0].target == "web-db"
    assert exp.method[0].params["latency"] == 300  # the --var, typed as `chaos run --var KEY:int=VALUE` types it


def test_var_sets_configuration_values_as_chaos_run_does(tmp_path, monkeypatch):
    monkeypatch.delenv("CLI16_UNSET_DELAY", raising=False)
    f = _own_stack_ctk(tmp_path)
    stack = {"stack": str(tmp_path / "shop")}
    with pytest.raises(ExperimentError) as info:  # an env key that is not set, without default: an error ...
        load_experiment(f, overrides=stack)
    assert "CLI16_UNSET_DELAY is not set" in str(info.value)
    exp = load_experiment(f, overrides={**stack, "delay_ms": "250", "listeners.count": "0"})  # ... unless --var sets it
    assert exp.method[0].params["latency"] == 250 and exp.listeners.count == 0
    monkeypatch.setenv("CLI16_UNSET_DELAY", "100")
    exp = load_experiment(f, overrides={**stack, "delay_ms:float": "75"})  # --var wins over the environment
    assert exp.method[0].params["latency"] == 75
    with pytest.raises(ExperimentError) as info:
        load_experiment(f, overrides={**stack, "delay_ms:int": "slow", "delay_ms:complex": "1"})
    assert sorted(str(p) for p in info.value.problems) == [
        "--var delay_ms:complex=1: unknown type 'complex'; expected int, float or bytes",
        "--var delay_ms:int=slow: 'slow' is not int",
    ]


def test_import_prints_each_error_once(tmp_path, capsys):
    doc = json.loads(CTK.read_text())
    doc["steady-state-hypothesis"]["probes"][0]["provider"]["url"] = "${nope}/health"
    doc["method"].append({"ref": "room-api-is-healthy"})  # the same probe again: the same error, not twice
    f = tmp_path / "ctk.json"
    f.write_text(json.dumps(doc, indent=1))
    assert main(["import", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.count("${nope} is not in the experiment's configuration") == 1, err


def test_what_import_writes_validates_where_it_is_written(tmp_path, capsys, monkeypatch):
    """A stack name is found from the output's folder; `--var stack=...` is --stack; a typed dotted
    key is refused (it used to be ignored); nothing is written when the result would not validate."""
    monkeypatch.delenv("CLI16_UNSET_DELAY", raising=False)
    f = _own_stack_ctk(tmp_path)
    (tmp_path / "compose").mkdir()
    (tmp_path / "shop").rename(tmp_path / "compose" / "shop")
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere" / "out.yaml"
    elsewhere.parent.mkdir()
    monkeypatch.chdir(elsewhere.parent)  # compose/shop is beside the Chaos Toolkit file, not here
    args = ["import", str(f), "--var", "delay_ms:int=300"]
    assert main([*args, "--stack", "shop", "-o", str(elsewhere)]) == 2  # compose/shop is not found from there
    err = capsys.readouterr().err
    assert "would not validate from its folder" in err and "no stack named 'shop'" in err and not elsewhere.exists()
    here = tmp_path / "sub" / "out.yaml"
    here.parent.mkdir()
    assert main([*args, "--var", "stack=shop", "-o", str(here)]) == 0, capsys.readouterr().err
    assert load_experiment(here).stack == "shop"
    assert main([*args, "--stack", "shop", "--var", "listeners.count:int=7"]) == 2
    assert "--var listeners.count:int=7: a dotted key sets a key of the deadair experiment" in capsys.readouterr().err


def test_an_unset_configuration_key_is_one_error_not_two(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CLI16_UNSET_DELAY", raising=False)
    f = _own_stack_ctk(tmp_path)
    assert main(["import", str(f), "--stack", str(tmp_path / "shop")]) == 2
    err = capsys.readouterr().err
    assert "CLI16_UNSET_DELAY is not set" in err and "is not in the experiment's configuration" not in err, err


# -- review 16c: shapes that were tracebacks, and a small file that multiplied its configuration --


def _activity(**provider) -> dict:
    return {"type": "action", "name": "a", "provider": {"type": "process", "path": "true", **provider}}


@pytest.mark.parametrize(
    "changes, said",
    [
        ({"configuration": [1]}, "configuration is list [1]; expected a mapping"),
        ({"runtime": [1]}, "runtime is list [1]; expected a mapping"),
        ({"steady-state-hypothesis": [1]}, "steady-state-hypothesis is list [1]; expected a mapping"),
        ({"tags": 5}, "tags is int 5; expected a list"),
        ({"method": [{"type": "action", "name": "a", "provider": [1]}]}, "provider is list [1]; expected a mapping"),
        ({"method": [{"type": "action", "name": "a", "provider": "http"}]}, "provider is str 'http'"),
        ({"method": [{**_activity(), "pauses": [1]}]}, "pauses is list [1]; expected a mapping"),
        ({"method": [{**_activity(), "pauses": {"before": "x"}}]}, "pauses.before 'x' is not a number of seconds"),
        ({"method": [_activity(arguments=5)]}, "arguments 5: expected a list, a mapping or a string"),
        ({"method": [_activity(arguments="'unclosed")]}, "No closing quotation; expected a command line"),
        ({"method": [_activity(timeout="abc")]}, "timeout 'abc' is not a number of seconds"),
        (
            {"method": [{"type": "probe", "name": "h", "provider": {"type": "http", "url": "u", "headers": [1]}}]},
            "headers is list [1]; expected a mapping",
        ),
        ({"method": [_activity(), {"ref": [1]}]}, "ref [1] names no activity defined before it"),
    ],
)
def test_a_wrong_shape_is_a_located_error_not_a_traceback(changes, said, tmp_path, capsys):
    f = _ctk(tmp_path, **changes)
    assert main(["validate", str(f)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and said in err, err
    assert all(line.startswith(f"{f}:") and not line.startswith(f"{f}:0:") for line in err.splitlines()), err


def test_refs_and_configuration_cannot_multiply_a_small_file(tmp_path, capsys):
    """8 KB of JSON that would be 3 GB once `${big}` and 300 refs were expanded (review 16c, 2)."""
    big = "B" * 100_000
    url = "http://127.0.0.1:1/" + "${big}" * 100
    doc = json.loads(CTK.read_text())
    doc["configuration"] = {**doc.get("configuration", {}), "big": big}
    doc["method"] = [{"type": "probe", "name": "a", "provider": {"type": "http", "url": url}}] + [{"ref": "a"}] * 300
    f = tmp_path / "bomb.json"
    f.write_text(json.dumps(doc))
    tracemalloc.start()
    try:
        assert main(["validate", str(f)]) == 2
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    err = capsys.readouterr().err
    assert "makes the experiment more than 1,048,576 characters" in err and "Traceback" not in err
    assert peak < 60_000_000, peak
