"""The shape a summary.json must have before a report, metrics or a comparison is made of it.

`deadair report`, `deadair metrics` and `deadair compare` read summaries that may be old, hand-edited or damaged;
one check here, said in words with the field's place, keeps them from failing deep inside with a
traceback. Only the shape is checked (what the readers index into), never the values.
"""

from __future__ import annotations

from typing import Any

_DICT_OR_NULL = ("rollback", "abort", "stopped", "timings")
_ROLLBACK_LISTS = ("reverted", "unsettled", "failed", "gone")


def shape_problem(summary: Any) -> str | None:
    """What is wrong with the summary's shape, with the field's place (`verdicts[2].summary`),
    or None when a report can be made of it."""
    if not isinstance(summary, dict):
        return f"expected a JSON object, not {_kind(summary)}"
    verdicts = summary.get("verdicts")
    if verdicts is not None and not isinstance(verdicts, list):
        return f"verdicts: expected a list of objects, not {_kind(verdicts)}"
    for i, v in enumerate(verdicts or []):
        if not isinstance(v, dict):
            return f"verdicts[{i}]: expected an object, not {_kind(v)}"
        if v.get("summary") is not None and not isinstance(v["summary"], dict):
            return f"verdicts[{i}].summary: expected an object or null, not {_kind(v['summary'])}"
    for key in _DICT_OR_NULL:
        if summary.get(key) is not None and not isinstance(summary[key], dict):
            return f"{key}: expected an object or null, not {_kind(summary[key])}"
    rollback = summary.get("rollback") or {}
    for key in _ROLLBACK_LISTS:
        items = rollback.get(key)
        if items is not None and not isinstance(items, list):
            return f"rollback.{key}: expected a list, not {_kind(items)}"
        if key in ("failed", "gone") and any(not isinstance(x, dict) for x in items or []):
            return f"rollback.{key}: expected a list of objects"
    if rollback.get("details") is not None and not isinstance(rollback["details"], dict):
        return f"rollback.details: expected an object or null, not {_kind(rollback['details'])}"
    return None


def _kind(x: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(x), "a number"
    )
