"""Readiness: the decision rules on synthetic results (chaos.readiness.decision), margins, and the
policy file's parser with located errors. No engine, no store: results and a fixed clock in,
a scorecard out."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from results_data import summary, verdict

from chaos.language.expectations import parse_expectation
from chaos.readiness.decision import Evidence, decide, dimension
from chaos.readiness.margins import margin
from chaos.readiness.policy import DEFAULT, PolicyError, Targets, parse_policy, parse_target_option
from chaos.readiness.suite import Scenario

NOW = 1_800_000_000.0  # a fixed clock
HOUR = 3600.0


def scenario(stem: str, tags: tuple[str, ...] = (), capacity: dict | None = None) -> Scenario:
    return Scenario(Path(f"/suite/{stem}.yaml"), stem, f"title of {stem}", tags, f"{stem}.yaml::{stem}", capacity)


def ran(stem: str, age: float = 60.0, **kw) -> Evidence:
    """A run of the flagship's shape, `age` seconds before NOW (kw: summary()'s numbers)."""
    s = summary(f"run-{stem}", **kw)
    return Evidence("run", s["run_id"], NOW - age, s, f"/runs/run-{stem}/summary.json")


def sweep(
    stem: str,
    capacity: float | None,
    age: float = 60.0,
    vary: str = "listeners.count",
    unit: str = "listeners",
    **extra,
) -> Evidence:
    steps = []
    for load, dead in ((100, 0.1), (400, 0.4), (800, 0.9), (1600, 3.0)):
        slo = {"measure": "dead_air.total", "expect": "p95 < 1s", "value": dead, "bound": 1.0}
        dist = {"dead_air.total": {"count": load, "missing": 0, "p95": dead, "max": dead}}
        steps.append(
            {
                "load": load,
                "run_id": f"{stem}-{load}",
                "status": "passed",
                "slo": [{**slo, "outcome": "pass"}],
                "distributions": dist,
            }
        )
    data = {
        "kind": "capacity",
        "experiment": f"{stem}.yaml::{stem}",
        "sweep_id": f"sweep-{stem}",
        "vary": vary,
        "unit": unit,
        "target": 1000,
        "file_target": 1000,
        "headroom_required": 0.25,
        "steps": steps,
        "capacity": capacity,
        "knee": 400,
        "breakpoint": 1600,
        "binding": {"resource": "host CPU", "evidence": "95% busy"},
        **extra,
    }
    return Evidence("capacity", data["sweep_id"], NOW - age, data, f"/cap/{stem}/capacity.json")


def policy(text: str):
    return parse_policy(text, "policy.yaml")


def reasons(card: dict, kind: str | None = None) -> list[str]:
    return [r["text"] for r in card["reasons"] if kind is None or r["kind"] == kind]


def row(card: dict, stem: str) -> dict:
    return next(r for r in card["scenarios"] if r["scenario"] == stem)


# -- GO and each NO-GO reason -------------------------------------------------------------------
def test_every_required_scenario_passed_and_fresh_is_go():
    card = decide(DEFAULT, [scenario("a"), scenario("b")], {"a": ran("a"), "b": ran("b")}, now=NOW)
    assert card["decision"] == "GO" and card["reasons"] == []
    assert [r["status"] for r in card["scenarios"]] == ["pass", "pass"]
    assert row(card, "a")["run_id"] == "run-a" and row(card, "a")["age"] == "60 s"


def test_a_failed_required_scenario_is_no_go_naming_the_failed_verdict():
    card = decide(DEFAULT, [scenario("a"), scenario("b")], {"a": ran("a"), "b": ran("b", onset=2.5)}, now=NOW)
    assert card["decision"] == "NO-GO"
    [text] = reasons(card, "fail")
    assert "required scenario 'b' failed (run run-b)" in text and "hold_music_onset_p95_s (fail)" in text
    assert row(card, "b")["status"] == "fail"


def test_an_inconclusive_run_is_not_a_pass():
    ev = ran("a")
    ev.data["status"] = "inconclusive"
    card = decide(DEFAULT, [scenario("a")], {"a": ev}, now=NOW)
    assert card["decision"] == "NO-GO" and row(card, "a")["status"] == "inconclusive"
    assert reasons(card, "inconclusive")


def test_a_scenario_without_a_result_is_not_run_and_a_run_that_errored_is_not_run_either():
    errored = ran("b")
    errored.data.update(status="error", error="no Docker engine answers")
    card = decide(DEFAULT, [scenario("a"), scenario("b")], {"a": "no recorded run", "b": errored}, now=NOW)
    assert [row(card, s)["status"] for s in "ab"] == ["not run", "not run"]
    texts = reasons(card, "not run")
    assert len(texts) == 2 and "no recorded run" in texts[0] and "ended error: no Docker engine answers" in texts[1]


def test_a_required_scenario_missing_from_the_suite_is_no_go():
    card = decide(policy("required: [a, c]"), [scenario("a"), scenario("b")], {"a": ran("a"), "b": ran("b")}, now=NOW)
    assert reasons(card) == ["required scenario 'c' is not in the suite"]


def test_a_scenario_not_required_may_fail_without_blocking():
    card = decide(
        policy("required: [a]"), [scenario("a"), scenario("b")], {"a": ran("a"), "b": ran("b", onset=9)}, now=NOW
    )
    assert card["decision"] == "GO" and row(card, "b")["status"] == "fail" and not row(card, "b")["required"]


def test_staleness_with_a_fixed_clock():
    """max_age 24h: a result 25 h old is stale (counts as not run, its age said); 23 h is fresh."""
    pol = policy("max_age: 24h")
    card = decide(
        pol, [scenario("a"), scenario("b")], {"a": ran("a", age=25 * HOUR), "b": ran("b", age=23 * HOUR)}, now=NOW
    )
    a, b = row(card, "a"), row(card, "b")
    assert (a["status"], b["status"]) == ("stale", "pass")
    assert a["age"] == "25.0 h" and a["age_s"] == 25 * HOUR
    assert "25.0 h old, older than max_age 24.0 h (it was pass)" in a["note"]
    [text] = reasons(card, "stale")
    assert "'a' is stale (run run-a)" in text
    assert decide(policy("max_age: 26h"), [scenario("a")], {"a": ran("a", age=25 * HOUR)}, now=NOW)["decision"] == "GO"


def test_a_waived_scenario_does_not_block_and_its_verdicts_leave_the_launch_limits():
    pol = policy("waive: {b: 'accepted for launch: ticket OPS-12'}\nslo: {hold_music.onset: 3s}")
    card = decide(pol, [scenario("a"), scenario("b")], {"a": ran("a"), "b": ran("b", onset=9.0)}, now=NOW)
    assert card["decision"] == "GO", card["reasons"]
    b = row(card, "b")
    assert b["status"] == "waived" and b["outcome"] == "fail" and b["waived"] == "accepted for launch: ticket OPS-12"
    [lim] = card["limits"]
    assert lim["status"] == "held" and lim["worst"]["scenario"] == "a"
    # without the waiver, the same results are NO-GO twice over: a failed scenario and a launch limit
    card = decide(
        policy("slo: {hold_music.onset: 3s}"),
        [scenario("a"), scenario("b")],
        {"a": ran("a"), "b": ran("b", onset=9.0)},
        now=NOW,
    )
    assert {r["kind"] for r in card["reasons"]} == {"fail", "launch limit"}


def test_a_waived_scenario_that_was_not_run_does_not_block():
    card = decide(policy("waive: {b: later}"), [scenario("a"), scenario("b")], {"a": ran("a")}, now=NOW)
    assert card["decision"] == "GO" and row(card, "b")["status"] == "waived" and row(card, "b")["outcome"] == "not run"


# -- launch limits ------------------------------------------------------------------------------
def test_a_launch_limit_is_checked_against_every_verdict_on_its_measure_worst_first():
    pol = policy("slo: {dead_air: 2s}")
    card = decide(
        pol, [scenario("a"), scenario("b")], {"a": ran("a", dead_air=1.2), "b": ran("b", dead_air=0.4)}, now=NOW
    )
    [lim] = card["limits"]
    assert lim["status"] == "held" and lim["checked"] == 6  # before, during, after in each scenario
    assert lim["worst"]["scenario"] == "a" and lim["worst"]["value"] == 1.2
    assert lim["worst"]["margin"] == pytest.approx(0.4)
    assert card["decision"] == "GO"
    card = decide(
        policy("slo: {dead_air: 1s}"),
        [scenario("a"), scenario("b")],
        {"a": ran("a", dead_air=1.2), "b": ran("b", dead_air=0.4)},
        now=NOW,
    )
    [text] = reasons(card, "launch limit")
    assert text.startswith("launch limit dead_air <= 1s exceeded: worst 1.20s in a (during_dead_air_max_s, run run-a)")
    assert "2 of 6 verdict(s) beyond it" in text  # during and after of a


def test_a_bare_launch_limit_is_judged_on_the_worst_listener():
    """Review finding 2: a verdict on the median (0.2 s) whose worst listener had 30 s of dead air
    breaks `dead_air: 2s`; a verdict that recorded no max does not count (no data)."""
    ev = ran("a")
    ev.data["verdicts"] = [verdict("during", None, "dead_air", "p50", 0.2, expect="p50 < 5s", p95=12.0, max=30.0)]
    card = decide(policy("slo: {dead_air: 2s}"), [scenario("a")], {"a": ev}, now=NOW)
    [lim] = card["limits"]
    assert lim["status"] == "exceeded" and lim["worst"]["value"] == 30.0 and card["decision"] == "NO-GO"
    assert decide(policy("slo: {dead_air: 'p50 < 2s'}"), [scenario("a")], {"a": ev}, now=NOW)["decision"] == "GO"
    del ev.data["verdicts"][0]["summary"]["max"]
    card = decide(policy("slo: {dead_air: 2s}"), [scenario("a")], {"a": ev}, now=NOW)
    assert card["limits"][0]["status"] == "no data" and card["decision"] == "NO-GO"
    assert "1 verdict(s) on it recorded no max" in card["limits"][0]["text"]


def test_a_verdict_without_a_bound_is_left_out_of_the_margin():
    """Review finding 14: a passing probe's tolerance has no bound, so no margin: not -inf."""
    ev = ran("a")
    ev.data["verdicts"].append(verdict("during", 0, "probe.health", "value", 1.0, unit="count", expect="~ 200"))
    r = row(decide(DEFAULT, [scenario("a")], {"a": ev}, now=NOW), "a")
    assert r["margin_text"] != "-inf" and r["margin"] is not None


def test_a_launch_limit_with_a_statistic_reads_the_verdicts_distribution():
    """`p99 < 1s`: each verdict's p99, not the p95 it judged."""
    ev = ran("a", onset=0.5)
    onset = next(v for v in ev.data["verdicts"] if v["measure"] == "hold_music.onset")
    onset["summary"]["p99"] = 1.4
    card = decide(policy("slo: {hold_music.onset: 'p99 < 1s'}"), [scenario("a")], {"a": ev}, now=NOW)
    [lim] = card["limits"]
    assert lim["status"] == "exceeded" and lim["worst"]["value"] == 1.4
    assert decide(policy("slo: {hold_music.onset: 1s}"), [scenario("a")], {"a": ev}, now=NOW)["decision"] == "GO"


def test_a_launch_limit_no_scenario_measured_is_not_met():
    card = decide(policy("slo: {reconnect_time: 5s}"), [scenario("a")], {"a": ran("a")}, now=NOW)
    [text] = reasons(card, "launch limit")
    assert text == "launch limit reconnect_time <= 5s: no scenario measured reconnect_time (no data never passes)"


def test_a_stale_result_does_not_speak_for_a_launch_limit():
    card = decide(
        policy("slo: {dead_air: 1s}\nmax_age: 1h"), [scenario("a")], {"a": ran("a", age=2 * HOUR, dead_air=5)}, now=NOW
    )
    assert card["limits"][0]["status"] == "no data"


def test_a_listener_that_never_got_there_exceeds_any_limit():
    ev = ran("a")
    onset = next(v for v in ev.data["verdicts"] if v["measure"] == "hold_music.onset")
    onset.update(value=None, outcome="fail")
    onset["summary"].update(missing=2, p95=None, max=None)  # the worst listener never got there
    card = decide(policy("slo: {hold_music.onset: 3s}"), [scenario("a")], {"a": ev}, now=NOW)
    lim = card["limits"][0]
    assert lim["status"] == "exceeded" and lim["worst"]["value_text"] == "inf (never got there)"
    assert lim["worst"]["margin"] is None and lim["worst"]["margin_text"] == "-inf"
    assert row(card, "a")["margin_text"] == "-inf"


def test_a_lower_bound_launch_limit():
    ev = ran("a")
    ev.data["verdicts"].append(
        verdict("during", None, "join_success_ratio", "min", 0.97, unit="ratio", expect=">= 0.95")
    )
    card = decide(policy("slo: {join_success_ratio: '>= 0.99'}"), [scenario("a")], {"a": ev}, now=NOW)
    lim = card["limits"][0]
    assert lim["status"] == "exceeded" and lim["worst"]["margin"] == pytest.approx((0.97 - 0.99) / 0.99)
    assert (
        decide(policy("slo: {join_success_ratio: '>= 0.95'}"), [scenario("a")], {"a": ev}, now=NOW)["decision"] == "GO"
    )


# -- margins ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "expect, value, want",
    [
        ("p95 < 2s", 0.5, 0.75),
        ("p95 < 2s", 3.0, -0.5),
        ("< 2s", 2.0, 0.0),
        ("<= 500ms", 0.25, 0.5),
        (">= 0.99", 0.995, (0.995 - 0.99) / 0.99),
        (">= 0.99", 0.9, (0.9 - 0.99) / 0.99),
        ("> 10", 15, 0.5),
        ("between 1s and 3s", 2.5, 1 / 6),
        ("between 1s and 3s", 0.5, -0.5),
        ("max < 0", 0.3, -0.3),  # a bound of 0: the plain difference
        (">= 0", 2, 2),
    ],
)
def test_margins_are_relative_to_the_bound_and_negative_when_broken(expect, value, want):
    e = parse_expectation(expect)
    got = margin(value, e)
    assert got == pytest.approx(want)
    assert (got is not None and got >= 0) == e.holds(value) or (e.op == "<" and value == e.low)


def test_an_infinite_value_has_margin_minus_infinity_and_no_data_has_none():
    e = parse_expectation("p95 < 2s")
    assert margin(math.inf, e) == -math.inf and margin(math.nan, e) is None
    assert margin(1.0, parse_expectation("== 1")) is None


def test_a_scenarios_margin_is_its_smallest_and_the_row_carries_value_bound_margin():
    card = decide(DEFAULT, [scenario("a")], {"a": ran("a", onset=1.5, resume=0.3)}, now=NOW)
    a = row(card, "a")
    onset = next(v for v in a["slo"] if v["measure"] == "hold_music.onset")
    assert (onset["value"], onset["bound"], onset["op"]) == (1.5, 2.0, "<")
    assert onset["margin"] == pytest.approx(0.25) and onset["margin_text"] == "+25%"
    assert a["margin"] == pytest.approx(0.25)  # dead air 0 < 1.5s has +100%, resume 0.3 < 3s +90%


# -- categories ---------------------------------------------------------------------------------
def test_categories_come_from_tags_in_the_policys_order():
    scenarios = [
        scenario("mic", ("mic", "smoke")),
        scenario("edges", ("redundancy",)),
        scenario("both", ("abuse", "redundancy")),
        scenario("plain", ("smoke",)),
    ]
    card = decide(DEFAULT, scenarios, {s.stem: ran(s.stem) for s in scenarios}, now=NOW)
    assert [r["category"] for r in card["scenarios"]] == [
        "microphone-path",
        "redundancy",
        "redundancy",
        "uncategorised",
    ]
    cats = {c["category"]: c for c in card["categories"]}
    assert cats["redundancy"]["scenarios"] == ["edges", "both"] and cats["redundancy"]["summary"] == "all pass"
    assert cats["abuse"]["summary"] == "no scenario" and cats["uncategorised"]["scenarios"] == ["plain"]
    own = policy("categories: {abuse: [abuse], edge-things: [redundancy]}")
    card = decide(own, scenarios, {s.stem: ran(s.stem) for s in scenarios}, now=NOW)
    assert [r["category"] for r in card["scenarios"]] == ["uncategorised", "edge-things", "abuse", "uncategorised"]


def test_a_category_summary_counts_its_statuses():
    scenarios = [scenario("a", ("abuse",)), scenario("b", ("abuse",)), scenario("c", ("abuse",))]
    card = decide(DEFAULT, scenarios, {"a": ran("a"), "b": ran("b", onset=3.0)}, now=NOW)
    [abuse] = [c for c in card["categories"] if c["category"] == "abuse"]
    assert abuse["summary"] == "1 pass, 1 fail, 1 not run" and abuse["margin"] == pytest.approx(-0.5)


# -- capacity -----------------------------------------------------------------------------------
def test_capacity_below_target_times_one_plus_headroom_is_no_go():
    pol = policy("targets: {listeners: 1000, headroom: 25%}")
    s = scenario("cap", ("capacity",), capacity={"vary": "listeners.count"})
    card = decide(pol, [s], {"cap": sweep("cap", 1200)}, now=NOW)
    [cap] = card["capacity"]
    assert (cap["capacity"], cap["knee"], cap["breakpoint"], cap["binding"]) == (1200, 400, 1600, "host CPU")
    assert cap["required_load"] == 1250 and cap["headroom_at_target"] == pytest.approx(0.2)
    [text] = reasons(card, "capacity")
    assert (
        "capacity below target x (1 + headroom): cap (sweep sweep-cap): capacity 1200 < 1250 (target 1000 + 25%)"
        in text
    )
    assert not reasons(card, "fail")  # said once
    card = decide(pol, [s], {"cap": sweep("cap", 1300)}, now=NOW)
    assert card["decision"] == "GO" and card["capacity"][0]["headroom_at_target"] == pytest.approx(0.3)
    # the same sweep judged against --target listeners=800: GO
    card = decide(
        pol, [s], {"cap": sweep("cap", 1200)}, now=NOW, targets=parse_target_option("listeners=800", pol.targets)
    )
    assert card["decision"] == "GO" and card["capacity"][0]["required_load"] == 1000


def test_a_sweep_with_no_passing_step_has_no_capacity_and_fails():
    card = decide(DEFAULT, [scenario("cap", capacity={})], {"cap": sweep("cap", None)}, now=NOW)
    assert card["decision"] == "NO-GO" and "no step held its SLO" in reasons(card, "capacity")[0]


def test_a_sweep_that_never_broke_measured_a_lower_bound_against_its_own_target():
    card = decide(DEFAULT, [scenario("cap", capacity={})], {"cap": sweep("cap", 1600, breakpoint=None)}, now=NOW)
    cap = card["capacity"][0]
    assert cap["lower_bound"] and cap["target_from"] == "sweep" and cap["required_load"] == 1250
    assert card["decision"] == "GO" and cap["note"].startswith("capacity at least 1600 >= 1250")


def test_a_policy_target_that_no_fresh_sweep_measured_is_no_go():
    pol = policy("targets: {listeners: 1000, joins: 50/s}\nmax_age: 1h")
    card = decide(pol, [scenario("a")], {"a": ran("a")}, now=NOW)
    texts = reasons(card, "capacity")
    assert (
        len(texts) == 2 and "1000 listeners not demonstrated" in texts[0] and "50 joins/s not demonstrated" in texts[1]
    )
    s = scenario("cap", capacity={"vary": "listeners.count"})
    card = decide(pol, [s], {"cap": sweep("cap", 2000, age=2 * HOUR)}, now=NOW)
    assert row(card, "cap")["status"] == "stale"
    assert any("no fresh sweep varies listeners (cap: stale)" in t for t in reasons(card, "capacity"))


def test_join_rate_sweeps_are_judged_against_the_joins_target():
    assert dimension("listeners") == "listeners" and dimension("joins/s") == "joins" and dimension("edges") is None
    pol = policy("targets: {joins: 50/s, headroom: 0%}")
    s = scenario("storm", capacity={"vary": "join_rate"})
    card = decide(pol, [s], {"storm": sweep("storm", 40, vary="join_rate", unit="joins/s")}, now=NOW)
    assert card["capacity"][0]["target"] == 50 and "capacity 40 < 50" in reasons(card, "capacity")[0]


def test_a_sweep_is_judged_by_its_declared_unit_not_its_vary():
    """Review finding 6: a join step's count is a number of joiners (unit listeners), not a rate."""
    pol = policy("targets: {joins: 50/s, listeners: 2000, headroom: 0%}")
    s = scenario("crowd", capacity={"vary": "method.1.join.count"})
    card = decide(pol, [s], {"crowd": sweep("crowd", 2000, vary="method.1.join.count")}, now=NOW)
    cap = card["capacity"][0]
    assert cap["dimension"] == "listeners" and cap["target"] == 2000 and cap["status"] == "pass"
    card = decide(pol, [s], {"crowd": sweep("crowd", 2000, unit="joiners")}, now=NOW)
    assert row(card, "crowd")["status"] == "not run" and "no known unit" in row(card, "crowd")["note"]


def test_a_sweep_without_a_policy_target_is_judged_by_its_own_target_and_headroom():
    """Review findings 7 and 8: the sweep's file target and headroom (deadair capacity's rule);
    a sweep run with another --target is another version unless the policy's target judges it."""
    s = scenario("cap", capacity={"vary": "listeners.count", "target": 1000})
    card = decide(DEFAULT, [s], {"cap": sweep("cap", 1000)}, now=NOW)  # 1000 < 1000 x 1.25
    assert (
        row(card, "cap")["status"] == "fail" and "capacity 1000 < 1250 (target 1000 + 25%)" in row(card, "cap")["note"]
    )
    given = sweep("cap", 20, target=10)  # `deadair capacity --target 10`; the file says 1000
    card = decide(DEFAULT, [s], {"cap": given}, now=NOW)
    assert (
        row(card, "cap")["status"] == "not run"
        and "run with --target 10 where the file says 1000" in row(card, "cap")["note"]
    )
    card = decide(policy("targets: {listeners: 16, headroom: 25%}"), [s], {"cap": given}, now=NOW)
    assert row(card, "cap")["status"] == "pass"  # the policy's target judges it: 20 >= 16 x 1.25


def test_only_sweep_steps_up_to_the_target_speak_for_the_launch_limits():
    """Steps beyond the launch's load are where the sweep looks for the break: a dead_air.total
    of 3 s at 1600 listeners is no breach of a 1 s limit for a launch of 1000."""
    pol = policy("targets: {listeners: 1000, headroom: 0%}\nslo: {dead_air.total: 1s}")
    card = decide(pol, [scenario("cap", capacity={})], {"cap": sweep("cap", 1000)}, now=NOW)
    lim = card["limits"][0]
    assert lim["status"] == "held" and lim["checked"] == 3 and lim["worst"]["value"] == 0.9
    card = decide(
        policy("targets: {listeners: 2000, headroom: 0%}\nslo: {dead_air.total: 1s}"),
        [scenario("cap", capacity={})],
        {"cap": sweep("cap", 1000)},
        now=NOW,
    )
    assert card["limits"][0]["status"] == "exceeded"


# -- a policy change flips the decision ---------------------------------------------------------
def test_the_same_results_are_go_under_one_policy_and_no_go_under_another():
    scenarios = [scenario("mic", ("mic",)), scenario("edges", ("redundancy",))]
    results = {"mic": ran("mic", onset=0.8, dead_air=0.3, age=3 * HOUR), "edges": ran("edges", dead_air=1.1, age=HOUR)}
    lenient = policy("slo: {hold_music.onset: 1s, dead_air: 2s}\nmax_age: 24h")
    strict = policy("slo: {hold_music.onset: 500ms, dead_air: 1s}\nmax_age: 2h")
    go, no_go = decide(lenient, scenarios, results, now=NOW), decide(strict, scenarios, results, now=NOW)
    assert go["decision"] == "GO" and go["reasons"] == []
    assert no_go["decision"] == "NO-GO"
    # mic's result (3 h) is stale under max_age 2h, so only edges speaks for the limits: its onset
    # 0.48 s holds 500ms, its dead air 1.1 s breaks 1s
    assert [(r["kind"], r["scenario"]) for r in no_go["reasons"]] == [("stale", "mic"), ("launch limit", "edges")]
    assert no_go["reasons"][1]["text"].startswith("launch limit dead_air <= 1s exceeded: worst 1.10s in edges")


# -- the policy file ----------------------------------------------------------------------------
def test_a_full_policy_parses():
    pol = policy(
        "targets: {listeners: 1000, joins: 50/s, headroom: 25%}\n"
        "slo: {dead_air: 2s, hold_music.onset: 3s, reconnect_time: 5s, join_success_ratio: '>= 0.99', live.resume.p95: 3s}\n"
        "max_age: 24h\nrequired: [a, b]\nwaive: {b: 'accepted: OPS-12'}\ncategories: {mic-stuff: [mic]}\n"
    )
    assert pol.targets == Targets(1000, 50, 0.25) and pol.max_age == 24 * HOUR
    assert [(lim.key, lim.measure, lim.expect.op, lim.expect.low, lim.stat) for lim in pol.limits] == [
        ("dead_air", "dead_air", "<=", 2.0, None),
        ("hold_music.onset", "hold_music.onset", "<=", 3.0, None),
        ("reconnect_time", "reconnect_time", "<=", 5.0, None),
        ("join_success_ratio", "join_success_ratio", ">=", 0.99, None),
        ("live.resume.p95", "live.resume", "<=", 3.0, "p95"),
    ]
    assert pol.required == ("a", "b") and pol.waive == {"b": "accepted: OPS-12"}
    assert pol.categories == {"mic-stuff": ("mic",)} and pol.is_required("a") and not pol.is_required("c")


def test_the_default_policy():
    assert DEFAULT.targets == Targets(None, None, 0.25) and DEFAULT.limits == () and DEFAULT.max_age == 24 * HOUR
    assert DEFAULT.required is None and DEFAULT.waive == {} and "microphone-path" in DEFAULT.categories


@pytest.mark.parametrize(
    "text, where, message",
    [
        (
            "max_age: 24h\ntargts: {listeners: 5}\n",
            "policy.yaml:2:1:",
            "unknown key 'targts' (did you mean 'targets'?); expected one of: targets",
        ),
        (
            "max_age: 24 hours\n",
            "policy.yaml:1:10:",
            "max_age: '24 hours' is not valid; expected a duration with a unit",
        ),
        (
            "slo:\n  dead_air: 2s\n  hold_music.onst: 3s\n",
            "policy.yaml:3:3:",
            "unknown key 'hold_music.onst' (did you mean 'hold_music.onset'?)",
        ),
        (
            "slo:\n  join_success_ratio: 2s\n",
            "policy.yaml:2:23:",
            "is a duration but join_success_ratio is a ratio; expected an expectation",
        ),
        (
            "slo:\n  dead_air: 2\n",
            "policy.yaml:2:13:",
            "slo.dead_air: 2 is not a limit; expected a duration such as 2s",
        ),
        ("slo: {dead_air: 'p95 < 2 secs'}\n", "policy.yaml:1:17:", "is not an expectation; expected one such as"),
        (
            "targets:\n  listeners: many\n",
            "policy.yaml:2:14:",
            "targets.listeners 'many'; expected a whole number of listeners above 0",
        ),
        (
            "targets: {joins: 50 per second}\n",
            "policy.yaml:1:18:",
            "targets.joins '50 per second'; expected a rate such as 50/s",
        ),
        (
            "targets: {headroom: -5%}\n",
            "policy.yaml:1:21:",
            "targets.headroom '-5%'; expected a percentage such as 25%",
        ),
        ("required: some\n", "policy.yaml:1:11:", "required: 'some'; expected `all` or a non-empty list of scenario"),
        (
            "required: []\n",
            "policy.yaml:1:11:",
            "required: []; expected `all` or a non-empty list",
        ),  # review finding 13
        ("waive:\n  rolling-restart: ''\n", "policy.yaml:2:20:", "waive.rolling-restart: a waiver needs its reason"),
        ("categories: {mic: mic}\n", "policy.yaml:1:19:", "categories.mic: 'mic'; expected a list of tags"),
        ("- targets\n", "policy.yaml:1:1:", "a policy is a mapping; expected keys among: targets, slo"),
        ("slo: {dead_air: 2s\n", "policy.yaml:2:1:", "YAML syntax"),
        ("max_age: 1h\nmax_age: 2h\n", "policy.yaml:2:1:", "duplicate key 'max_age'"),
    ],
)
def test_policy_problems_are_located(text, where, message):
    with pytest.raises(PolicyError) as err:
        policy(text)
    assert err.value.exit_code == 2
    first = str(err.value).splitlines()[0]
    assert first.startswith(where) and message in first, first


def test_every_policy_problem_is_reported_not_only_the_first():
    with pytest.raises(PolicyError) as err:
        policy("max_age: soon\nslo: {dead_air: fast}\nwaive: {x: ''}\n")
    assert [p.line for p in err.value.problems] == [1, 2, 3]


def test_the_target_option():
    base = Targets(1000, None, 0.25)
    assert parse_target_option("listeners=2000,joins=50/s", base) == Targets(2000, 50, 0.25)
    assert parse_target_option("joins=600/m,headroom=10%", base) == Targets(1000, 10, 0.1)
    with pytest.raises(PolicyError) as err:
        parse_target_option("listeners=2000,users=5", base)
    assert (
        str(err.value) == "--target listeners=2000,users=5: 'users=5'; expected listeners=N, joins=R/s or headroom=P%"
    )
