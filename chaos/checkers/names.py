"""Stable names for a run's verdicts: the keys that JUnit properties, the results store, metrics
and `--fail-on` rules use, so that tonight's number lines up with last night's.

A verdict's name is its measure with dots as underscores, then its statistic (not repeated when
the measure's name already carries it: `dead_air.max` is `dead_air_max`), then the unit suffix:
`_s` for durations, `_ratio` for ratios, none for counts and probes (a probe verdict counts its
failed samples). When the same measure and statistic is judged in more than one window of a run
(the steady state is judged before, during and after the method), each gets its window first:
`before_dead_air_max_s`, `during_dead_air_max_s`, `step0_hold_music_onset_p95_s`; a name still
shared after that gets `_2`, `_3` in order. `hold_music_onset_p95_s` stays unprefixed while it
is judged once.

Names are computed from the verdicts' JSON (as in summary.json), so old summaries get them too.
"""

from __future__ import annotations

import re
from typing import Any

from chaos.language.registry import resolve_measure

UNIT_SUFFIX = {"duration": "_s", "ratio": "_ratio"}


def split_measure(name: str) -> tuple[str, str | None]:
    """`dead_air.max` -> ("dead_air", "max"); `hold_music.onset` -> ("hold_music.onset", None)."""
    try:
        measure, stat = resolve_measure(name)
        return measure.name, stat
    except KeyError:
        return name, None  # a measure this installation does not know (a plugin's, in an old summary)


def window_label(v: dict[str, Any]) -> str:
    """Where a verdict was judged: before, during, after, abort, or step<N>."""
    return f"step{v.get('step')}" if v.get("phase") == "step" else str(v.get("phase"))


def measure_key(v: dict[str, Any]) -> str:
    """`hold_music.onset.p95`, `dead_air.max`, `probe room-api is healthy`: measure and statistic."""
    measure = str(v.get("measure", ""))
    if v.get("unit") == "probe" or measure.startswith("probe "):
        return measure
    base, name_stat = split_measure(measure)
    stat = str(v.get("stat") or name_stat or "")
    return f"{base}.{stat}" if stat else base


def _slug(text: str) -> str:
    return re.sub(r"_+", "_", re.sub(r"[^a-z0-9]", "_", text.lower())).strip("_")


def _base_name(v: dict[str, Any]) -> str:
    key = measure_key(v)
    if v.get("unit") == "probe" or key.startswith("probe "):
        key = f"{key} {v.get('stat') or 'failed'}"
    return _slug(key) + UNIT_SUFFIX.get(str(v.get("unit")), "")


def verdict_names(verdicts: list[dict[str, Any]]) -> list[str]:
    """The name of each verdict of one run, in order (see the module's docstring)."""
    bases = [_base_name(v) for v in verdicts]
    shared = {b for b in bases if bases.count(b) > 1}
    names = [f"{window_label(v)}_{b}" if b in shared else b for v, b in zip(verdicts, bases)]
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}_{seen[n]}")
    return out


def display_keys(verdicts: list[dict[str, Any]]) -> list[str]:
    """`hold_music.onset.p95`, `dead_air.max@during`: measure keys with the window where needed."""
    keys = [measure_key(v) for v in verdicts]
    shared = {k for k in keys if keys.count(k) > 1}
    return [f"{k}@{window_label(v)}" if k in shared else k for v, k in zip(verdicts, keys)]


def named(verdicts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The verdicts with `name` set (kept where it already is)."""
    names = verdict_names(verdicts)
    return [{**v, "name": v.get("name") or n} for v, n in zip(verdicts, names)]
