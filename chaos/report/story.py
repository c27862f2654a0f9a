"""The run in one paragraph of plain language, for a game-day review: what was done to the
system, what listeners heard, which goals were met, and whether everything was put back.

Written from the summary's verdicts and the journal's timeline only; a run without a summary
says so and claims nothing.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from chaos.checkers.history import FaultSpan
from chaos.report.misses import Miss
from chaos.report.runfiles import RunRecord

FAULT_WORDS = {
    "mic.cut": "cut the speaker's microphone connection",
    "mic.stall": "stalled the speaker's microphone connection (open, but carrying nothing)",
    "mic.degrade": "made the speaker's connection slow and unreliable",
    "mic.flap": "made the speaker's connection drop again and again",
    "mic.reset": "kept resetting the speaker's connection",
    "mic.crash": "crashed the speaker's audio encoder",
    "mic.mute": "muted the speaker (silence sent as if it were sound)",
    "link.down": "took the network link {target} down",
    "link.partition": "silently cut the network link {target}",
    "link.flap": "made the network link {target} go down and up repeatedly",
    "link.latency": "slowed down the network link {target}",
    "link.bandwidth": "squeezed the bandwidth of the network link {target}",
    "node.kill": "crashed the server {target}",
    "node.stop": "stopped the server {target}",
    "node.pause": "froze the server {target}",
    "node.restart": "restarted the server {target}",
    "node.disconnect": "took the server {target} off the network",
    "flood.joins": "flooded the room with people joining",
    "flood.http": "flooded {target} with requests",
    "flood.connections": "flooded {target} with connections",
}

# what each subject did, per measure: "{subject} {phrase}" with the value in place of {v}
DOES = {
    "hold_music.onset": "heard hold music within {v} of the fault starting",
    "hold_music.arrival": "received hold music within {v} of the fault starting",
    "live.resume": "heard the live speaker again within {v} of the fault ending",
    "live.arrival": "received the live speaker again within {v} of the fault ending",
    "dead_air": "heard no dead air longer than {v}",
    "dead_air.total": "heard at most {v} of dead air in all",
    "stall_ratio": "spent at most {v} of their time in dead air",
    "reconnect_time": "were listening again within {v} of losing their connection",
    "time_to_first_audio": "heard audio within {v} of joining",
    "e2e_latency": "heard the speaker at most {v} late",
    "delivery_latency": "received the speaker's audio at most {v} late",
    "silence": "heard no digital silence longer than {v}",
    "join_latency": "were let into the room within {v}",
}
# measures judged on instants, rounds or joins rather than listeners: the value in place of {v}
AT_WORST = {
    "listeners.connected_ratio": "at every moment at least {v} of listeners were hearing audio",
    "join_success_ratio": "{v} of the attempts to join the room succeeded",
    "server.lb_servers_up": "the load balancer kept at least {v} servers up",
    "server.icecast_listeners": "the streaming servers counted at least {v} listeners",
    "server.slow_listeners": "the streaming servers reported at most {v} slow listeners",
}
NEVER = {
    "hold_music.onset": "never heard hold music",
    "hold_music.arrival": "never received hold music",
    "live.resume": "never heard the live speaker again",
    "live.arrival": "never received the live speaker again",
    "reconnect_time": "never got back",
    "time_to_first_audio": "never heard anything",
    "e2e_latency": "never heard a beep from the speaker",
    "delivery_latency": "never received a beep from the speaker",
}
_OPS = {"<": "under", "<=": "at most", ">": "over", ">=": "at least", "==": "exactly", "!=": "not"}
_PHASES = {"before": "before", "during": "during", "after": "after"}


def base_measure(name: str) -> str:
    """`dead_air.max` -> `dead_air` (the statistic may be written in the name)."""
    from chaos.checkers.measures import resolve_measure

    try:
        return resolve_measure(name)[0].name
    except (KeyError, ValueError):
        return name


def phases_words(phases: list[str], conj: str = "and") -> str:
    words = [_PHASES.get(p, p) for p in phases]
    listed = words[0] if len(words) == 1 else ", ".join(words[:-1]) + f" {conj} " + words[-1]
    return f" {listed} the faults"


def seconds(v: float | None) -> str:
    if v is None or math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "never"
    return f"{v:.2f} s" if abs(v) < 10 else f"{v:.1f} s"


def value_words(v: float | None, unit: str) -> str:
    if unit == "duration":
        return seconds(v)
    if v is None or math.isnan(v):
        return "n/a"
    if unit == "ratio":
        return f"{v * 100:.1f}%"
    return f"{v:g}"


def goal_words(v: dict[str, Any]) -> str:
    """`p95 < 2s` -> `under 2.00 s`: the bound, in words (the statistic is in the subject)."""
    from chaos.language.expectations import parse_expectation

    try:
        exp = parse_expectation(str(v["expect"]))
    except ValueError:
        return str(v.get("expect"))
    unit = v.get("unit", "")
    if exp.op == "between":
        return f"between {value_words(exp.low, unit)} and {value_words(exp.high, unit)}"
    return f"{_OPS[exp.op]} {value_words(exp.low, unit)}"


def subject(stat: str, basis: str) -> str:
    who = "golden ears" if basis.startswith("ears") else "listeners"
    if stat == "max":
        return f"every one of the {who}" if who == "golden ears" else "every listener"
    if stat == "p50":
        return f"half of the {who}"
    if stat.startswith("p"):
        return f"{stat[1:]}% of {who}"
    if stat == "mean":
        return f"on average, the {who}"
    return f"the {who} ({stat})"


def fault_words(f: FaultSpan) -> str:
    text = FAULT_WORDS.get(f.fault, "applied {fault} to {target}")
    return text.format(target=f.target or "its default target", fault=f.fault)


def verdict_sentence(v: dict[str, Any], missed: list[Miss], when: str = "") -> str:
    """One goal, in words: what happened, what was wanted, and who missed it."""
    s = v.get("summary") or {}
    unit, stat, measure = v.get("unit", ""), str(v.get("stat", "")), base_measure(str(v.get("measure", "")))
    met = {"pass": "met", "fail": "MISSED", "unknown": "UNCERTAIN"}.get(v.get("outcome", ""), "not judged")
    goal = goal_words(v)
    if unit == "probe":
        name = measure.removeprefix("probe ")
        n = int(s.get("count") or 0)
        text = f"the check \u201c{name}\u201d answered as expected {n - int(v.get('value') or 0)} of {n} times"
    elif s.get("no_data"):
        text = f"{measure} could not be measured ({s['no_data']}), which never counts as met"
    elif v.get("value") is None and measure in NEVER:
        text = f"{s.get('missing', 'some')} of {s.get('count', '?')} listeners {NEVER[measure]}"
    elif measure in DOES and (stat in ("max", "mean") or stat.startswith("p")):
        does = DOES[measure].format(v=value_words(v.get("value"), unit))
        who = subject(stat, str(s.get("basis", "listeners")))
        if stat == "max" and does.startswith("heard no "):  # "every listener heard no ..." reads badly
            one = "golden ear" if who.endswith("golden ears") else "listener"
            rest = does.removeprefix("heard no ")
            if v.get("value") == 0:
                rest = rest.split(" longer than")[0]
                rest = f"any {rest}"
            text = f"no {one} heard {rest}"
        else:
            text = f"{who} {does}"
    elif measure in AT_WORST and stat in ("min", "max"):
        text = AT_WORST[measure].format(v=value_words(v.get("value"), unit))
    else:
        text = f"{measure} ({stat}) was {value_words(v.get('value'), unit)}"
    text = f"{text}{when} (goal: {goal}; {met})" if unit != "probe" else f"{text}{when} ({met})"
    if missed and v.get("outcome") != "pass":
        named = ", ".join(m.subject + (f" on {m.served_by}" if m.served_by else "") for m in missed[:3])
        more = f" and {len(missed) - 3} more" if len(missed) > 3 else ""
        text += f"; missed by {named}{more}"
    return text


def series_outcome(repeat: dict[str, Any] | None) -> tuple[str, list[str]]:
    """("regressed", what regressed) or ("flaky", the flaky goals) when the series this run
    belongs to (chaos.results' repeat summary) ended so; ("", []) otherwise. A regression is
    read from `regression` (a baseline judgement: `regressions`, each with a `message`), or from
    the series' status `regressed` or exit code 6; flaky from `flaky`, status `flaky` or exit 7."""
    if not repeat:
        return "", []
    judgement = repeat.get("regression")
    regressions = judgement.get("regressions") if isinstance(judgement, dict) else repeat.get("regressions")
    if regressions or repeat.get("status") == "regressed" or repeat.get("exit_code") == 6:
        return "regressed", [str(r.get("message") or r) if isinstance(r, dict) else str(r) for r in regressions or []]
    flaky = [str(name) for name in repeat.get("flaky") or []]
    if flaky or repeat.get("status") == "flaky" or repeat.get("exit_code") == 7:
        return "flaky", flaky
    return "", []


def _dry_opening(rec: RunRecord, counted: list[dict[str, Any]], failed: list[dict[str, Any]]) -> str:
    """A dry run (`--dry faults`): nothing was injected, so no goal about a fault can be met."""
    skipped = [v for v in rec.verdicts if v.get("skipped")]
    not_counted = f"; {len(skipped)} goal(s) about the faults were not counted" if skipped else ""
    if rec.status == "passed":
        return (
            f"Dry run: no fault was injected; the {len(counted)} goal(s) judged without faults were met{not_counted}."
        )
    if rec.status == "failed":
        return (
            f"Dry run: no fault was injected, yet {len(failed)} of the {len(counted)} goal(s) judged without faults "
            f"were missed{not_counted}."
        )
    rest = _opening(rec, dry=False)
    return f"Dry run: no fault was injected; {rest[0].lower()}{rest[1:]}"


def _opening(rec: RunRecord, dry: bool = True) -> str:
    s = rec.summary or {}
    verdicts = [v for v in rec.verdicts if v.get("phase") != "abort" and not v.get("skipped")]
    failed = [v for v in verdicts if v.get("outcome") == "fail"]
    unknown = [v for v in verdicts if v.get("outcome") == "unknown"]
    status = rec.status
    if dry and s.get("dry"):
        return _dry_opening(rec, verdicts, failed)
    series, _ = series_outcome(rec.repeat)
    if status == "passed" and series:
        return f"This run met all {len(verdicts)} goals, but the series of runs it belongs to " + (
            "regressed against its baseline." if series == "regressed" else "was flaky: its runs disagreed."
        )
    if status == "passed":
        return f"The system held up: all {len(verdicts)} goals were met."
    if status == "failed":
        return f"The system did not hold up: {len(failed)} of {len(verdicts)} goals were missed."
    if status == "not_steady":
        return "No fault was injected, because the system was already unwell before the test began."
    if status == "aborted":
        a = s.get("abort") or {}
        return (
            f"The test was stopped early: a safety limit tripped ({a.get('measure', '?')} {a.get('expect', '')}), "
            "and every fault was rolled back at once."
        )
    if status == "inconclusive":
        return (
            f"No goal was missed, but {len(unknown)} could not be told apart from the test tool's own timing "
            "error, so the run should be measured again."
        )
    if status == "stopped":
        who = (s.get("stopped") or {}).get("by")
        return "An operator stopped the test" + (f" ({who})" if who else "") + "; everything was rolled back at once."
    if status == "interrupted":
        return "The test was interrupted before it finished; everything was rolled back."
    if status == "error":
        return f"The test could not be completed: {s.get('error') or 'an error'}."
    if status == "unknown":
        return "This run left no summary, so no goal can be reported as met."
    return f"The run ended {status.replace('_', ' ')}."


def _audience(rec: RunRecord) -> str:
    n = len(rec.history.listeners)
    if not n:
        return ""
    ears = len(rec.history.ears)
    extra = f", {ears} of them decoding the sound as a person's ears would" if ears else ""
    return f"{n} simulated listeners joined the room{extra}."


def when_words(t: float, method_start: float | None) -> str:
    """A moment in plain words, on the method's clock as the chart's x axis (`5.00 s after the
    method began` is x=5, `t+5.00s`); a run that never reached its method counts from its start."""
    if method_start is None:
        return f"{seconds(t)} into the run"
    d = round(t - method_start, 2)
    return f"{seconds(abs(d))} {'before' if d < 0 else 'after'} the method began"


def _faults(rec: RunRecord) -> str:
    faults = sorted(rec.history.faults.values(), key=lambda f: f.start)
    if not faults:
        return "No fault was injected."
    parts = []
    for f in faults[:4]:
        how_long = f" for {seconds(f.end - f.start)}" if f.end - f.start >= 0.05 else ""
        skipped = getattr(f, "skipped", "")
        not_done = f" (planned, but NOT injected: {skipped})" if skipped else ""
        parts.append(f"{fault_words(f)}{how_long}, {when_words(f.start, rec.history.method_start)}{not_done}")
    more = f", and {len(faults) - 4} more fault(s)" if len(faults) > 4 else ""
    if all(getattr(f, "skipped", "") for f in faults):
        return "No fault was actually injected: the plan was to " + "; ".join(parts) + more + "."
    return "During the test we " + "; ".join(parts) + more + "."


def _goals(rec: RunRecord, missed: dict[str, list[Miss]]) -> str:
    """Failed and uncertain goals first, one sentence each; steady-state goals judged alike in
    several phases are told once."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for v in rec.verdicts:
        if v.get("phase") == "abort" or v.get("skipped"):  # a not-injected fault's goals are not the run's
            continue
        key = (v.get("phase") == "step", v.get("step"), v.get("measure"), v.get("expect"), v.get("outcome"))
        groups[key].append(v)
    order = {"fail": 0, "unknown": 1, "pass": 2}
    sentences = []
    for key in sorted(groups, key=lambda k: (order.get(str(k[4]), 3), not k[0], k[1] or 0)):
        vs = groups[key]
        worst = vs[0]
        if len(vs) > 1 and worst.get("unit") == "duration":
            worst = max(vs, key=lambda v: math.inf if v.get("value") is None else float(v["value"]))
        text = verdict_sentence(worst, missed.get(verdict_key(worst), []))
        if not key[0]:  # a steady-state goal: say in which phases
            when = phases_words([str(v.get("phase")) for v in vs], "or" if text.startswith("no ") else "and")
            text = verdict_sentence(worst, missed.get(verdict_key(worst), []), when)
        sentences.append(text[0].upper() + text[1:])
    return " ".join(s.rstrip(".") + "." for s in sentences)


def verdict_key(v: dict[str, Any]) -> str:
    return f"{v.get('phase')}:{v.get('step')}:{v.get('measure')}:{v.get('expect')}"


def _silence(rec: RunRecord) -> str:
    """Dead air overall, from the listener states: who heard silence after their first audio."""
    longest: dict[str, float] = {}
    for lid, stretches in rec.states.stretches.items():
        run, best = 0.0, 0.0
        for st in stretches:
            run = run + (st.end - st.start) if st.state in ("dead_air", "reconnecting", "gone") else 0.0
            best = max(best, run)
        if best > 0:
            longest[lid] = best
    n = len(rec.states.stretches)
    if not n:
        return ""
    if not longest:
        judged = any(base_measure(str(v.get("measure"))) == "dead_air" for v in rec.verdicts)
        return "" if judged else "No listener heard any dead air at any point after joining."
    worst = max(longest, key=lambda lid: longest[lid])
    server = rec.history.served_by(worst)
    return (
        f"In all, {len(longest)} of {n} listeners heard some dead air; the longest silence was "
        f"{seconds(longest[worst])} ({worst}{' on ' + server if server else ''})."
    )


def _rollback(rec: RunRecord) -> str:
    """Faults undone in the run (on schedule, or at once by a guardrail or the kill switch), then
    what the ledger still held at the end."""
    ended, total = len(rec.of_kind("fault.end")), len(rec.history.faults)
    if not ended:
        undone = ""
    elif ended == total:
        undone = (
            "The fault was undone during the run" if total == 1 else f"All {total} faults were undone during the run"
        )
    else:
        undone = f"{ended} of {total} faults were undone during the run"
    if rec.summary is None:
        return (undone + ".") if undone else ""
    r = rec.summary.get("rollback") or {}
    failed, unsettled = r.get("failed") or [], r.get("unsettled") or []
    if failed or unsettled:
        what = "; ".join([f"{f.get('fault')}: {f.get('error')}" for f in failed] + list(unsettled))
        ledger = f" (ledger kept at {r['ledger']}; run `deadair sweep`)" if r.get("ledger") else ""
        return (undone + ". " if undone else "") + f"WARNING: not everything could be put back: {what}{ledger}."
    reverted = r.get("reverted") or []
    if reverted:
        tail = f"the final rollback put back and checked {len(reverted)} more item(s)"
    else:
        tail = "nothing was left for the final rollback"
    return f"{undone}, and {tail}." if undone else tail[0].upper() + tail[1:] + "."


def repeat_sentence(repeat: dict[str, Any] | None) -> str:
    """For the plain-language paragraph."""
    if not repeat:
        return ""
    ran, flaky = repeat.get("ran"), list(repeat.get("flaky") or [])
    head = f"This was run {repeat.get('index')} of {ran} of the same test"
    outcome, regressions = series_outcome(repeat)
    if outcome == "regressed":
        what = f": {'; '.join(regressions)}" if regressions else ""
        flaky_too = f" ({len(flaky)} goal(s) were also flaky: {', '.join(flaky)})" if flaky else ""
        return f"{head}; the series REGRESSED against its baseline{what}{flaky_too}."
    if flaky:
        return (
            f"{head}; across them, {len(flaky)} goal(s) came out differently from run to run (flaky), "
            f"so neither a pass nor a fail can be trusted for them: {', '.join(flaky)}."
        )
    if outcome == "flaky":
        return f"{head}; the series was FLAKY: its runs did not all end the same way."
    return f"{head}; every goal came out the same in all {ran} runs."


def plain_verdict(rec: RunRecord, missed: dict[str, list[Miss]]) -> str:
    """One paragraph a non-engineer can read aloud in a game-day review."""
    parts = [_opening(rec), _audience(rec), _faults(rec)]
    if rec.summary is not None:
        parts.append(_goals(rec, missed))
    parts += [_silence(rec), _rollback(rec), repeat_sentence(rec.repeat)]
    return " ".join(p for p in parts if p)
