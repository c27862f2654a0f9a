"""Chaos Toolkit experiments (JSON or YAML), translated into deadair experiments on load.

Supported (anything else is an error at its line and column, never silently ignored):
  - title, description, tags; `configuration` values, literal or `{type: env, key, default}`;
    an env key named DEADAIR_LINK_<NAME>_URL becomes the link's host URL at run time;
    `--var KEY=VALUE` or `--var KEY:TYPE=VALUE` (int, float, bytes) sets a configuration value,
    as `chaos run --var` does (chaos.language.chaostoolkit.split_overrides);
  - steady-state-hypothesis probes with `http` and `process` providers and every tolerance form
    but `probe` (a Python function); `runtime.hypothesis.strategy` default, before-method-only,
    after-method-only, during-method-only and continuously;
  - method activities, in order, with `pauses` (before, after) and `ref`:
      * actions `chaostoxi.toxic.actions`: create_latency_toxic, create_bandwith_degradation_toxic,
        create_slow_connection_close_toxic, create_timeout_toxic, create_slicer_toxic,
        create_limiter_toxic, create_toxic, delete_toxic;
      * actions `chaostoxi.proxy.actions`: disable_proxy, enable_proxy;
      * `http` and `process` actions (run once) and probes (a sample on the timeline);
  - rollbacks: delete_toxic and enable_proxy are what deadair's ledger does anyway for the faults
    the method created; `http` and `process` rollbacks run after them.
Semantics kept: the hypothesis is checked before the method and again at its end, while the
faults it created are still in place (the Chaos Toolkit runs rollbacks after that check).
Semantics changed, on purpose: deadair reverts every fault on every exit path (the Chaos
Toolkit's default skips rollbacks when a run failed or was interrupted), and method activities
start at offsets given by their pauses, not after the previous one returns.
"""

from __future__ import annotations

import math
import os
import re
import shlex
from collections.abc import Callable
from typing import Any

from chaos.errors import Problem
from chaos.language.limits import MAX_DOCUMENT_CHARS
from chaos.language.positions import Positions

TOXIC_ACTIONS = "chaostoxi.toxic.actions"
PROXY_ACTIONS = "chaostoxi.proxy.actions"
_TOXIC_TYPES = {"latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data"}
_LINK_ENV = re.compile(r"^DEADAIR_LINK_([A-Z0-9_]+)_URL$")
_SUB = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_STRATEGIES = {
    "default": (("before", "during"), "end"),
    "before-method-only": (("before",), "end"),
    "after-method-only": (("during",), "end"),
    "during-method-only": (("during",), "2s"),
    "continuously": (("before", "during"), "2s"),
}
_TOP = {
    "version",
    "title",
    "description",
    "tags",
    "contributions",
    "configuration",
    "secrets",
    "extensions",
    "controls",
    "runtime",
    "steady-state-hypothesis",
    "method",
    "rollbacks",
}


def looks_like(data: Any) -> bool:
    """A Chaos Toolkit experiment: a steady-state-hypothesis, or activities with a type and provider."""
    if not isinstance(data, dict):
        return False
    if "steady-state-hypothesis" in data:
        return True
    method = data.get("method")
    return isinstance(method, list) and any(isinstance(a, dict) and ("provider" in a or "ref" in a) for a in method)


_VAR_TYPES: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "bytes": str, "str": str}


def split_overrides(ctk: dict, overrides: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(deadair overrides, configuration overrides) of a Chaos Toolkit experiment's `--var`s.

    As `chaos run --var` does, `KEY=VALUE` or `KEY:TYPE=VALUE` sets the configuration value KEY:
    any key of the experiment's `configuration`, any typed one, and any bare name that is no key
    of a deadair experiment. Dotted paths (`listeners.count=5`) and deadair's top-level keys
    (`stack=...`) stay deadair overrides of the translated experiment."""
    from chaos.language.schema import schema

    given = ctk.get("configuration")
    declared: dict[str, Any] = given if isinstance(given, dict) else {}
    top = set(schema()["properties"])
    rest, config = {}, {}
    for key, value in overrides.items():
        name, typed, _ = key.partition(":")
        if name in declared or typed or ("." not in key and key not in top):
            config[key] = value
        else:
            rest[key] = value
    return rest, config


class _Translator:
    def __init__(self, ctk: dict, pos: Positions, file: str, overrides: dict[str, str] | None = None):
        self.ctk, self.src, self.file = ctk, pos, file
        self.overrides = overrides or {}
        self.pos = Positions()
        self.problems: list[Problem] = []
        self.config: dict[str, Any] = {}
        self.defined: dict[str, tuple[dict, tuple]] = {}
        self.unset: set[str] = set()  # configuration keys whose env variable is not set (reported once)
        self.chars = 0  # characters of the strings translated so far: refs and ${name} repeat them

    def spend(self, chars: int, path: tuple) -> bool:
        """Count what a translated value adds; False (reported once) past MAX_DOCUMENT_CHARS, so
        that a small file whose activities repeat a long configuration value is refused before it
        is built."""
        over = self.chars > MAX_DOCUMENT_CHARS
        self.chars += chars
        if self.chars <= MAX_DOCUMENT_CHARS:
            return True
        if not over:
            self.problem(
                path,
                f"substituting configuration values and repeating activities by ref makes the experiment "
                f"more than {MAX_DOCUMENT_CHARS:,} characters; expected shorter values or fewer uses",
            )
        return False

    def mapping(self, value: Any, path: tuple, what: str) -> dict:
        """`value` when it is a mapping; {} (reported) when it is something else, {} when absent."""
        if value is None or isinstance(value, dict):
            return value or {}
        self.problem(path, f"{what} is {type(value).__name__} {_short(value)}; expected a mapping")
        return {}

    def listing(self, value: Any, path: tuple, what: str) -> list:
        """`value` when it is a list; [] (reported) when it is something else, [] when absent."""
        if value is None or isinstance(value, list):
            return value or []
        self.problem(path, f"{what} is {type(value).__name__} {_short(value)}; expected a list")
        return []

    def seconds(self, value: Any, path: tuple, what: str) -> float:
        """A Chaos Toolkit duration (seconds; a timeout may be [connect, read]); a bad one is a
        problem, not silently 0."""
        got = _seconds(value)
        if got is None:
            self.problem(path, f"{what} {_short(value)} is not a number of seconds; expected a number such as 2.5")
            return 0.0
        return got

    def problem(self, path: tuple, message: str) -> None:
        found = Problem(self.file, *self.src.of(path), f"Chaos Toolkit: {message}")
        if found not in self.problems:  # an activity used twice (a `ref`) is wrong once
            self.problems.append(found)

    def var_overrides(self) -> None:
        """`--var KEY[:TYPE]=VALUE`: set after the file's own values, so they win."""
        for key, raw in self.overrides.items():
            name, _, typ = key.partition(":")
            self.config[name] = raw  # a bad one is reported once, here, not again where it is used
            if typ and "." in name:
                self.problems.append(
                    Problem(
                        f"--var {key}={raw}",
                        0,
                        0,
                        f"a dotted key sets a key of the deadair experiment, which has its own types; "
                        f"expected {name}={raw}",
                    )
                )
                continue
            if typ and typ not in _VAR_TYPES:
                self.problems.append(
                    Problem(f"--var {key}={raw}", 0, 0, f"unknown type {typ!r}; expected int, float or bytes")
                )
                continue
            try:
                self.config[name] = _VAR_TYPES[typ or "str"](raw)
            except ValueError:
                self.problems.append(Problem(f"--var {key}={raw}", 0, 0, f"{raw!r} is not {typ}"))

    def place(self, new: tuple, old: tuple) -> None:
        self.pos.values[new] = self.src.of(old)

    # -- values ------------------------------------------------------------------------------------
    def configuration(self) -> None:
        given = {key.partition(":")[0] for key in self.overrides}
        for key, value in self.mapping(self.ctk.get("configuration"), ("configuration",), "configuration").items():
            path = ("configuration", key)
            if key in given:  # --var: the file's value (an env key that is not set, say) is not needed
                continue
            if isinstance(value, dict):
                if value.get("type") != "env":
                    self.problem(path, f"configuration {key!r}: only literal values and {{type: env}} are supported")
                    continue
                env = value.get("key", "")
                m = _LINK_ENV.match(env)
                if m:
                    self.config[key] = "${links." + m.group(1).lower().replace("_", "-") + "}"
                elif env in os.environ:
                    self.config[key] = os.environ[env]
                elif "default" in value:
                    self.config[key] = value["default"]
                else:
                    self.problem(
                        path, f"configuration {key!r}: environment variable {env} is not set and has no default"
                    )
                    self.unset.add(key)  # reported here; its uses are not "not in the configuration"
            else:
                self.config[key] = value

    def sub(self, value: Any, path: tuple) -> Any:
        if isinstance(value, dict):
            return {k: self.sub(v, path + (k,)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.sub(v, path + (i,)) for i, v in enumerate(value)]
        if not isinstance(value, str):
            return value
        if self.chars > MAX_DOCUMENT_CHARS:  # reported: translate no more
            return ""
        whole = _SUB.fullmatch(value)
        if whole and whole.group(1) in self.config and not isinstance(self.config[whole.group(1)], str):
            got = self.config[whole.group(1)]
            return got if self.spend(len(str(got)), path) else ""
        length = len(value) + sum(
            len(str(self.config[m.group(1)])) - len(m.group(0))
            for m in _SUB.finditer(value)
            if m.group(1) in self.config
        )
        if not self.spend(length, path):  # measured before the string is built
            return ""

        def one(m: re.Match) -> str:
            if m.group(1) in self.config:
                return str(self.config[m.group(1)])
            if m.group(1) in self.unset:
                return m.group(0)
            self.problem(path, f"${{{m.group(1)}}} is not in the experiment's configuration")
            return m.group(0)

        return _SUB.sub(one, value)

    # -- providers ---------------------------------------------------------------------------------
    def provider(self, activity: dict, path: tuple) -> tuple[str, dict] | None:
        """(http|process, deadair spec) for an http or process provider."""
        where = path + ("provider",)
        given = activity.get("provider")
        prov = self.sub(self.mapping(given, where, "provider"), where)
        if given is not None and not isinstance(given, dict):  # reported
            return None
        ptype = prov.get("type")
        if ptype == "http":
            spec: dict[str, Any] = {"url": prov.get("url", ""), "method": str(prov.get("method", "GET")).upper()}
            if prov.get("headers"):
                headers = self.mapping(prov["headers"], where + ("headers",), "headers")
                spec["headers"] = {str(k): str(v) for k, v in headers.items()}
            args = prov.get("arguments")
            if args:
                if spec["method"] == "GET" and isinstance(args, dict):
                    sep = "&" if "?" in spec["url"] else "?"
                    spec["url"] += sep + "&".join(f"{k}={v}" for k, v in args.items())
                else:
                    spec["body"] = args
            if "timeout" in prov:
                spec["timeout"] = f"{self.seconds(prov['timeout'], where + ('timeout',), 'timeout'):g}s"
            return "http", spec
        if ptype == "process":
            args = prov.get("arguments", [])
            if isinstance(args, str):
                try:
                    args = shlex.split(args)
                except ValueError as exc:
                    self.problem(where + ("arguments",), f"arguments {_short(args)}: {exc}; expected a command line")
                    return None
            elif isinstance(args, dict):
                args = [str(x) for kv in args.items() for x in kv if x not in (None, "")]
            elif not isinstance(args, list):
                self.problem(
                    where + ("arguments",), f"arguments {_short(args)}: expected a list, a mapping or a string"
                )
                return None
            spec = {"path": prov.get("path", ""), "arguments": [str(a) for a in args]}
            if "timeout" in prov:
                spec["timeout"] = f"{self.seconds(prov['timeout'], where + ('timeout',), 'timeout'):g}s"
            return "process", spec
        if ptype == "python":
            return None
        self.problem(
            path + ("provider",),
            f"provider type {ptype!r} is not supported; supported: http, process, "
            f"python ({TOXIC_ACTIONS}, {PROXY_ACTIONS})",
        )
        return None

    # -- the experiment --------------------------------------------------------------------------
    def translate(self) -> dict:
        ctk = self.ctk
        for key in ctk:
            if key not in _TOP:
                self.problem((key,), f"unknown key {key!r}")
        if ctk.get("secrets"):
            self.problem(("secrets",), "secrets are not supported (the audio-room stack needs none)")
        if ctk.get("controls"):
            self.problem(("controls",), "controls are not supported")
        self.configuration()
        self.var_overrides()
        tags = self.listing(ctk.get("tags"), ("tags",), "tags")
        out: dict[str, Any] = {
            "title": str(ctk.get("title") or "Chaos Toolkit experiment"),
            "description": str(ctk.get("description") or ""),
            "tags": [re.sub(r"[^A-Za-z0-9_-]+", "-", str(t)).strip("-") or "tag" for t in tags],
            "listeners": {"count": 0},
            "windows": {"warmup": "0s", "gate": "0s", "recovery": "0s"},
            "steady_state": [],
            "method": [],
            "rollbacks": [],
        }
        for key in ("title", "description", "tags"):
            self.place((key,), (key,))
        runtime = self.mapping(ctk.get("runtime"), ("runtime",), "runtime")
        strategy = self.mapping(runtime.get("hypothesis"), ("runtime", "hypothesis"), "runtime.hypothesis").get(
            "strategy", "default"
        )
        if not isinstance(strategy, str) or strategy not in _STRATEGIES:
            self.problem(
                ("runtime",), f"hypothesis strategy {strategy!r} is not supported; supported: {', '.join(_STRATEGIES)}"
            )
            strategy = "default"
        when, every = _STRATEGIES[strategy]
        hypo = self.mapping(ctk.get("steady-state-hypothesis"), ("steady-state-hypothesis",), "steady-state-hypothesis")
        probes = self.listing(hypo.get("probes"), ("steady-state-hypothesis", "probes"), "probes")
        for i, probe in enumerate(probes):
            path = ("steady-state-hypothesis", "probes", i)
            if not isinstance(probe, dict):
                self.problem(path, "a probe is a mapping")
                continue
            name = str(probe.get("name") or f"probe {i}")
            self.spend(len(name), path)
            self.defined[name] = (probe, path)
            tol = probe.get("tolerance")
            if isinstance(tol, dict) and tol.get("type") == "probe":
                self.problem(
                    path + ("tolerance",),
                    "tolerances of type probe (a Python function) are not supported; "
                    "use a value, a list, or range, regex or jsonpath",
                )
                continue
            if "tolerance" not in probe:
                self.problem(path, f"hypothesis probe {name!r} has no tolerance")
                continue
            got = self.provider(probe, path)
            if got is None:
                if isinstance(probe.get("provider"), dict) and probe["provider"].get("type") == "python":
                    self.problem(
                        path + ("provider",), "python probes are not supported in the hypothesis; use http or process"
                    )
                continue
            j = len(out["steady_state"])
            out["steady_state"].append(
                {"probe": name, got[0]: got[1], "tolerance": tol, "when": list(when), "every": every}
            )
            self.place(("steady_state", j), path)
        self.method(out)
        return out

    def method(self, out: dict) -> None:
        t = 0.0
        open_faults: dict[tuple[str, str], dict] = {}  # (proxy, toxic name or "") -> step
        for i, act in enumerate(self.listing(self.ctk.get("method"), ("method",), "method")):
            path = ("method", i)
            if not isinstance(act, dict):
                self.problem(path, "an activity is a mapping")
                continue
            if "ref" in act:
                ref = act["ref"]
                if not isinstance(ref, str) or ref not in self.defined:
                    self.problem(path, f"ref {ref!r} names no activity defined before it")
                    continue
                act, path = self.defined[ref]
            else:
                self.defined[str(act.get("name", ""))] = (act, path)
            pauses = self.mapping(act.get("pauses"), path + ("pauses",), "pauses")
            t += self.seconds(pauses.get("before", 0), path + ("pauses", "before"), "pauses.before")
            at = f"{t:g}s"
            name = str(act.get("name") or f"activity {i}")
            if not self.spend(len(name), path):
                break
            kind = act.get("type")
            prov: dict = act["provider"] if isinstance(act.get("provider"), dict) else {}
            if kind not in ("action", "probe"):
                self.problem(path, f"activity type {kind!r} is not supported; expected action or probe")
            elif prov.get("type") == "python":
                self.python_action(act, path, t, out, open_faults)
            else:
                got = self.provider(act, path)
                if got is not None:
                    out["method"].append({"at": at, "probe" if kind == "probe" else "action": name, got[0]: got[1]})
                    self.place(("method", len(out["method"]) - 1), path)
            t += self.seconds(pauses.get("after", 0), path + ("pauses", "after"), "pauses.after")
        for step in open_faults.values():
            step["for"] = f"{max(t - step.pop('_at'), 0):g}s"
        for step in out["method"]:
            step.pop("_at", None)
        if not out["method"]:
            self.problem(("method",), "the method has no activity deadair can run")
        for i, act in enumerate(self.listing(self.ctk.get("rollbacks"), ("rollbacks",), "rollbacks")):
            path = ("rollbacks", i)
            if not isinstance(act, dict):
                self.problem(path, "an activity is a mapping")
                continue
            prov = act["provider"] if isinstance(act.get("provider"), dict) else {}
            if prov.get("type") == "python":
                func = prov.get("func")
                if prov.get("module") in (TOXIC_ACTIONS, PROXY_ACTIONS) and func in ("delete_toxic", "enable_proxy"):
                    continue  # the ledger reverts every fault the method created
                self.problem(
                    path + ("provider",),
                    f"rollback {prov.get('module')}.{func} is not supported; "
                    "supported: delete_toxic, enable_proxy (done by deadair's ledger), http, process",
                )
                continue
            got = self.provider(act, path)
            if got is not None:
                out["rollbacks"].append({"action": str(act.get("name") or f"rollback {i}"), got[0]: got[1]})
                self.place(("rollbacks", len(out["rollbacks"]) - 1), path)

    def python_action(self, act: dict, path: tuple, t: float, out: dict, open_faults: dict) -> None:
        prov = act["provider"]
        module, func = prov.get("module"), prov.get("func")
        where = path + ("provider",)
        args = self.sub(
            self.mapping(prov.get("arguments"), where + ("arguments",), "arguments"), where + ("arguments",)
        )
        if act.get("type") != "action" or module not in (TOXIC_ACTIONS, PROXY_ACTIONS):
            self.problem(
                where,
                f"python provider {module}.{func} is not supported; supported: {TOXIC_ACTIONS} "
                f"(create_*_toxic, create_toxic, delete_toxic) and {PROXY_ACTIONS} (disable_proxy, "
                "enable_proxy), or http and process providers",
            )
            return
        if func in ("delete_toxic", "enable_proxy"):
            key = (args.get("for_proxy") or args.get("proxy_name"), args.get("toxic_name", ""))
            step = open_faults.pop(key, None)
            if step is None:
                self.problem(where, f"{func} {key[0]} {key[1]}".rstrip() + ": the method created no such fault before")
                return
            step["for"] = f"{max(t - step.pop('_at'), 0):g}s"
            return
        if func == "disable_proxy":
            params: dict[str, Any] = {}
            fault, target, key = "link.down", args.get("proxy_name"), (args.get("proxy_name"), "")
        else:
            converted = _toxic_params(func, args)
            if isinstance(converted, str):
                self.problem(where, converted)
                return
            fault, params = converted
            target, key = args.get("for_proxy"), (args.get("for_proxy"), args.get("toxic_name", ""))
        if not target:
            self.problem(where, f"{func} needs the proxy's name")
            return
        step = {"at": f"{t:g}s", "fault": fault, "target": target, "_at": t}
        if params:
            step["with"] = params
        out["method"].append(step)
        j = len(out["method"]) - 1
        self.place(("method", j), path)
        self.place(("method", j, "target"), path + ("provider", "arguments"))
        self.place(("method", j, "with"), path + ("provider", "arguments"))
        open_faults[key] = step


def _seconds(value: Any) -> float | None:
    """Chaos Toolkit durations are seconds (a timeout may be [connect, read]); None when not a
    finite number of seconds of at most a day."""
    try:
        if isinstance(value, list) and value:
            value = max(value)
        if isinstance(value, bool):
            return None
        got = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return got if math.isfinite(got) and 0 <= got <= 86_400 else None


def _short(value: Any) -> str:
    """A value as a problem quotes it, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:50] + "..."


def _toxic_params(func: str, args: dict) -> tuple[str, dict] | str:
    def ms(v: Any) -> str:
        return f"{v}ms"

    simple: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {
        "create_latency_toxic": (
            "link.latency",
            lambda a: {"latency": ms(a["latency"]), "jitter": ms(a.get("jitter", 0))},
        ),
        "create_bandwith_degradation_toxic": ("link.bandwidth", lambda a: {"rate": int(a["rate"])}),
        "create_slow_connection_close_toxic": ("link.slow_close", lambda a: {"delay": ms(a["delay"])}),
        "create_timeout_toxic": ("link.timeout", lambda a: {"timeout": ms(a["timeout"])}),
        "create_slicer_toxic": (
            "link.slicer",
            lambda a: {
                "average_size": int(a["average_size"]),
                "size_variation": int(a["size_variation"]),
                "delay": f"{float(a['delay']) / 1000:g}ms",
            },
        ),
        "create_limiter_toxic": ("link.limit_data", lambda a: {"bytes": int(a["bytes_limit"])}),
    }
    try:
        if func in simple:
            fault, convert = simple[func]
            return fault, convert(args)
        if func == "create_toxic":
            ttype = args["toxic_type"]
            if ttype not in _TOXIC_TYPES:
                return f"toxic type {ttype!r} is not supported; supported: {', '.join(sorted(_TOXIC_TYPES))}"
            attrs = dict(args.get("attributes") or {})
            for k in ("latency", "jitter", "delay", "timeout"):
                if k in attrs and not (ttype == "slicer" and k == "delay"):
                    attrs[k] = ms(attrs[k])
            if ttype == "slicer" and "delay" in attrs:
                attrs["delay"] = f"{float(attrs['delay']) / 1000:g}ms"
            params = {**attrs, "stream": args.get("stream", "downstream"), "toxicity": args.get("toxicity", 1.0)}
            return f"link.{ttype}", params
    except KeyError as exc:
        return f"{func} needs the argument {exc.args[0]!r}"
    except (TypeError, ValueError) as exc:
        return f"{func}: bad argument ({exc})"
    return f"{TOXIC_ACTIONS}.{func} is not supported; supported: {', '.join(simple)}, create_toxic, delete_toxic"


def translate(ctk: dict, pos, file: str, overrides: dict[str, str] | None = None):
    """The deadair experiment data for a Chaos Toolkit experiment, its positions, and problems.
    `overrides`: configuration values from `--var` (split_overrides says which are)."""
    tr = _Translator(ctk, pos, file, overrides)
    try:
        out = tr.translate()
    except (TypeError, ValueError, AttributeError, KeyError) as exc:  # a shape no check above foresaw
        tr.problem((), f"cannot translate this experiment ({type(exc).__name__}: {_short(str(exc))})")
        out = {}
    return out, tr.pos, tr.problems
