"""`deadair import`: a Chaos Toolkit experiment translated to deadair YAML, checked against the
stack it will run on (`--stack`, a name or a compose file or folder of the user's) with its
`configuration` set by `--var` as `chaos run --var` sets it; nothing is written that would not
validate where it is written."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chaos.errors import ExperimentError, Problem
from chaos.language.variables import parse_var_options


def cmd_import(args: argparse.Namespace) -> int:
    """Translate a Chaos Toolkit experiment to deadair YAML (to read, edit and keep), checked
    against the stack it will run on (--stack) with its configuration set by --var as `chaos run`
    sets it."""
    import yaml as _yaml

    from chaos.language import chaostoolkit
    from chaos.language.loader import load_experiment, parse_experiment
    from chaos.language.positions import Positions, load_yaml
    from chaos.language.variables import apply_overrides

    text = Path(args.file).read_text() if Path(args.file).is_file() else None
    if text is None:
        raise ExperimentError([Problem(args.file, 0, 0, "no such file")])
    data, pos, problems = load_yaml(text, args.file)
    if problems:
        raise ExperimentError(problems)
    if not chaostoolkit.looks_like(data):
        raise ExperimentError(
            [
                Problem(
                    args.file,
                    1,
                    1,
                    "not a Chaos Toolkit experiment (no steady-state-hypothesis, no activities with a provider)",
                )
            ]
        )
    overrides = parse_var_options(getattr(args, "var", None))
    given_stack = overrides.pop("stack", None)  # `--var stack=X` is --stack X (and is written too)
    checked_stack, written_stack = _import_stack(args.stack or given_stack, args.output)
    if checked_stack is not None:
        overrides["stack"] = checked_stack
    load_experiment(args.file, overrides=overrides)  # every problem, located in the original file, once
    rest, configuration = chaostoolkit.split_overrides(data, overrides)
    rest.pop("stack", None)
    out, _, _ = chaostoolkit.translate(data, pos, args.file, configuration)
    apply_overrides(out, rest, Positions())  # dotted keys (listeners.count=5): checked by the load above
    if written_stack is not None:
        out = {**{k: out[k] for k in ("title", "description", "tags") if k in out}, "stack": written_stack, **out}
    rendered = f"# translated from the Chaos Toolkit experiment {args.file} by `deadair import`\n" + _yaml.safe_dump(
        out, sort_keys=False, allow_unicode=True
    )
    # what is written must validate where it is read: a stack name or relative path is found from
    # the output's folder (the current one for stdout), not from the Chaos Toolkit file's
    dest = Path(args.output) if args.output else Path.cwd() / "(stdout)"
    try:
        parse_experiment(rendered, dest)
    except ExperimentError as exc:
        raise ExperimentError(
            [Problem(str(dest), 0, 0, "the translation would not validate from its folder:")]
            + [Problem(p.file, p.line, p.column, f"(as written) {p.message}") for p in exc.problems]
        ) from None
    if args.output:
        try:
            Path(args.output).write_text(rendered)
        except OSError as exc:
            raise ExperimentError([Problem(args.output, 0, 0, f"cannot write the output: {exc.strerror}")]) from None
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        print(rendered, end="")
    return 0


def _import_stack(given: str | None, output: str | None) -> tuple[str | None, str | None]:
    """(what the check loads, what the imported file says) for `deadair import --stack`: a name
    stays a name; a path (taken from the current directory) is checked as an absolute path and
    written relative to the output file's folder, where the loader looks for it."""
    import os

    if given is None:
        return None, None
    is_path = os.sep in given or given.endswith((".yml", ".yaml")) or Path(given).is_absolute()
    if not is_path and not Path(given).exists():  # ./myshop, a folder here, is that folder
        return given, given
    absolute = Path(given).resolve()
    folder = Path(output).resolve().parent if output else Path.cwd()
    if os.path.commonpath([absolute, folder]) == absolute.anchor:  # nothing in common but the root
        return str(absolute), str(absolute)
    relative = os.path.relpath(absolute, folder)
    return str(absolute), relative if os.sep in relative else f".{os.sep}{relative}"
