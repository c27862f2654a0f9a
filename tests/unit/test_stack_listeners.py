"""Where listeners get in is the stack's fact (its deadair.listeners.* labels), not deadair's:
a stack that says nothing has no audio, and its experiments get no listeners unless they ask."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chaos.errors import ExperimentError
from chaos.language.loader import load_experiment
from chaos.stack.definition import StackDefinition, StackError, find_stack

COMPOSE = """
services:
  toxiproxy:
    image: deadair/toxiproxy:2.12.0
    labels:
      deadair.toxiproxy: "8474"
      deadair.link.front: "0.0.0.0:8100 -> web:80"
      deadair.link.db: "0.0.0.0:8101 -> db:6379"
{extra}
  web:
    image: deadair/webshop:latest
  db:
    image: deadair/webshop:latest
"""

PROBE_ONLY = """
title: shop answers
stack: ./compose.yml
steady_state:
  - probe: home
    http: {url: "${links.front}/", timeout: 1s}
    tolerance: 200
method:
  - {at: 1s, fault: link.latency, target: db, for: 2s, with: {latency: 50ms}}
"""


def write(tmp_path: Path, experiment: str, labels: str = "") -> Path:
    (tmp_path / "compose.yml").write_text(COMPOSE.format(extra=labels))
    f = tmp_path / "exp.yaml"
    f.write_text(experiment)
    return f


def problems(f: Path) -> list[str]:
    with pytest.raises(ExperimentError) as err:
        load_experiment(f)
    return [str(p) for p in err.value.problems]


def test_a_stack_without_listener_labels_gets_no_listeners(tmp_path):
    exp = load_experiment(write(tmp_path, PROBE_ONLY))
    assert exp.listeners.count == 0


def test_a_listener_measure_on_a_stack_without_audio_is_refused_where_it_is_written(tmp_path):
    text = PROBE_ONLY.replace("steady_state:\n", 'steady_state:\n  - measure: dead_air.max\n    expect: "< 1s"\n')
    (msg,) = problems(write(tmp_path, text))
    assert ":5:5: dead_air.max is measured from listeners, but there are none" in msg
    assert "no deadair.listeners.* labels" in msg


def test_listeners_asked_for_on_a_stack_without_audio_must_name_their_link(tmp_path):
    text = PROBE_ONLY + "listeners: {count: 5}\n"
    (msg,) = problems(write(tmp_path, text))
    assert ":10:" in msg and "no link for listeners that join direct" in msg and "expected listeners.via" in msg
    exp = load_experiment(write(tmp_path, PROBE_ONLY + "listeners: {count: 5, via: front, path: /radio}\n"))
    assert (exp.listeners.count, exp.listeners.join, exp.listeners.via, exp.listeners.path) == (
        5,
        "direct",
        "front",
        "/radio",
    )


def test_the_stack_labels_give_the_way_in_and_the_count(tmp_path):
    labels = (
        '      deadair.listeners.join: "direct"\n'
        '      deadair.listeners.via: "front"\n'
        '      deadair.listeners.path: "/stream"\n'
    )
    exp = load_experiment(write(tmp_path, PROBE_ONLY, labels))
    assert (exp.listeners.count, exp.listeners.join, exp.listeners.via, exp.listeners.path) == (
        20,
        "direct",
        "front",
        "/stream",
    )


def test_the_audio_room_says_where_its_listeners_get_in():
    stack = find_stack("audio-room")
    assert stack.listeners == {"join": "room-api", "via": "entry-api", "stream": "entry-lb", "path": "/live"}
    here = Path(__file__).resolve().parents[2] / "experiments" / "edge-failover.yaml"
    exp = load_experiment(here)
    assert (exp.listeners.join, exp.listeners.via) == ("room-api", "entry-api")


def test_direct_listeners_on_the_audio_room_stream_from_its_stream_link(tmp_path):
    text = (
        "title: direct\nstack: audio-room\nlisteners: {count: 3, join: direct}\n"
        "steady_state:\n  - {measure: dead_air.max, expect: '< 1s'}\n"
        "method:\n  - {at: 1s, fault: link.latency, target: entry-lb, for: 1s, with: {latency: 10ms}}\n"
    )
    f = tmp_path / "d.yaml"
    f.write_text(text)
    exp = load_experiment(f)
    assert (exp.listeners.via, exp.listeners.path) == ("entry-lb", "/live")


@pytest.mark.parametrize(
    "labels, message",
    [
        ('      deadair.listeners.via: "nowhere"\n', "deadair.listeners.via names 'nowhere', not a link"),
        ('      deadair.listeners.join: "room-api"\n', "need deadair.listeners.via"),
        (
            '      deadair.listeners.via: "front"\n      deadair.listeners.join: "carrier-pigeon"\n',
            "expected room-api or direct",
        ),
        ('      deadair.listeners.vai: "front"\n', "label deadair.listeners.vai: unknown"),
    ],
)
def test_bad_listener_labels_are_refused_naming_the_label(tmp_path, labels, message):
    (tmp_path / "compose.yml").write_text(COMPOSE.format(extra=labels))
    with pytest.raises(StackError, match=message.replace("(", r"\(").replace("*", r"\*")):
        StackDefinition.load(tmp_path / "compose.yml")


def test_validate_exits_2_on_a_listener_measure_without_listeners(tmp_path):
    text = PROBE_ONLY.replace("steady_state:\n", 'steady_state:\n  - measure: dead_air.max\n    expect: "< 1s"\n')
    f = write(tmp_path, text)
    proc = subprocess.run(
        [sys.executable, "-m", "chaos", "validate", str(f)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "measured from listeners, but there are none" in proc.stdout + proc.stderr


@pytest.mark.parametrize("fault", ["flood.http", "mic.cut"])  # floods need a rate and count: with: below
def test_a_default_target_of_the_audio_room_is_named_as_such_on_another_stack(tmp_path, fault):
    text = PROBE_ONLY.replace(
        "  - {at: 1s, fault: link.latency, target: db, for: 2s, with: {latency: 50ms}}",
        f"  - {{at: 1s, fault: {fault}, for: 2s{', with: {rate: 10/s, count: 10}' if fault.startswith('flood') else ''}}}",
    )
    (msg,) = problems(write(tmp_path, text))
    assert "of stack" in msg, msg
    assert f"({fault} aims at it when no target is given: a name of the audio-room stack)" in msg, msg


@pytest.mark.parametrize(
    "labels, message",
    [
        ('      deadair.listener.via: "front"\n', "label deadair.listener.via: unknown"),
        ('      deadair.listeners.Via: "front"\n', "label deadair.listeners.Via: unknown"),
        (
            '      deadair.listeners.via: "front"\n      deadair.listeners.path: "live"\n',
            "expected a path such as /live",
        ),
    ],
)
def test_a_misspelt_listener_label_is_refused_rather_than_meaning_no_audio(tmp_path, labels, message):
    (tmp_path / "compose.yml").write_text(COMPOSE.format(extra=labels))
    with pytest.raises(StackError, match=message):
        StackDefinition.load(tmp_path / "compose.yml")


def test_listener_labels_on_another_service_are_refused(tmp_path):
    text = COMPOSE.format(extra="") + '    labels:\n      deadair.listeners.via: "front"\n'
    (tmp_path / "compose.yml").write_text(text)
    with pytest.raises(StackError, match="service db carries deadair.listeners.via, which belongs on the service"):
        StackDefinition.load(tmp_path / "compose.yml")


def test_a_join_step_on_a_stack_without_audio_is_refused_at_the_step(tmp_path):
    """Without listeners: or labels, a crowd joining has no way in: refused when the file is
    loaded, not after the stack is up (where the runner met an empty link name)."""
    text = PROBE_ONLY + "  - {at: 2s, join: {count: 5}}\n"
    (msg,) = problems(write(tmp_path, text))
    assert ":10:5: no link for listeners that join direct on stack" in msg, msg
    assert "it has no deadair.listeners.* labels (no audio)" in msg


def test_a_listener_count_set_by_var_is_located_at_the_var(tmp_path):
    with pytest.raises(ExperimentError) as err:
        load_experiment(write(tmp_path, PROBE_ONLY), overrides={"listeners.count": "5"})
    (p,) = err.value.problems
    assert "--var listeners.count" in str(p) and "no link for listeners" in str(p), str(p)


def test_room_api_listeners_on_a_direct_stack_do_not_borrow_its_stream_link(tmp_path):
    labels = '      deadair.listeners.via: "front"\n      deadair.listeners.stream: "db"\n'
    (msg,) = problems(write(tmp_path, PROBE_ONLY + "listeners: {count: 2, join: room-api}\n", labels))
    assert "its listeners join direct and it names no link for listeners that join room-api" in msg, msg


def test_loading_without_checking_the_stack_still_takes_its_defaults():
    here = Path(__file__).resolve().parents[2] / "experiments" / "edge-failover.yaml"
    exp = load_experiment(here, check_stack=False)
    assert (exp.listeners.join, exp.listeners.via) == ("room-api", "entry-api")


def test_the_plan_of_a_run_without_listeners_does_not_wait_for_them(tmp_path):
    from chaos.report.text import render_plan

    text = render_plan(load_experiment(write(tmp_path, PROBE_ONLY)))
    assert "listeners  none" in text
    assert "after the listeners hear audio" not in text and "after the stack is up" in text


def test_the_webshop_apps_healthcheck_does_not_go_through_a_faulted_link():
    """A node fault's rollback waits for its node to be healthy again: a healthcheck that pinged
    Redis through the app-redis link made `node.kill app` unrevertable while a Redis fault ran."""
    stack = find_stack("webshop")
    test = " ".join(stack.services["app"]["healthcheck"]["test"])
    assert "/live" in test and "/health" not in test, test
    shop = (stack.compose_file.parent / "shop.py").read_text()
    live = shop[shop.index('if self.path == "/live"') : shop.index('if self.path == "/health"')]
    assert "redis" not in live.split("\n", 1)[1].lower(), live
