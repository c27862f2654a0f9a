"""`deadair init`: a starter deadair set-up for a user's existing compose file. The compose work
(Toxiproxy, links, rewritten addresses) is chaos.stack.scaffold's; here are the command's parts
that need the language: the generated experiment is validated against the generated stack before
anything is written, so init writes all of it or nothing."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chaos.errors import ExperimentError, Problem


def cmd_init(args: argparse.Namespace) -> int:
    """A starter deadair setup for an existing compose file (chaos.stack.scaffold): the compose
    file with Toxiproxy and links, a first experiment, a pytest configuration; then validated."""
    from chaos.language.loader import load_experiment
    from chaos.stack import scaffold

    out_dir = Path(args.dir)
    if args.compose:
        compose_file = Path(args.compose)
        if not compose_file.is_file():
            raise scaffold.ScaffoldError([Problem(args.compose, 0, 0, "no such compose file; expected --compose FILE")])
    else:
        try:
            compose_file = scaffold.find_compose_file(out_dir)
        except scaffold.ScaffoldError:
            if out_dir.resolve() == Path.cwd().resolve():
                raise
            compose_file = scaffold.find_compose_file(Path("."))  # `deadair init out` beside the compose file
    texts = list(args.link or [])
    if not texts and sys.stdin.isatty() and sys.stdout.isatty():
        texts = _ask_links(compose_file)
    links = [scaffold.Target.parse(t, "--link") for t in texts]
    entry = scaffold.Target.parse(args.entry, "--entry", with_path=True) if args.entry else None
    sc = scaffold.plan(compose_file, out_dir, links, entry, args.name)
    ini, ini_text = scaffold.pytest_config(out_dir)
    files = dict(sc.files)
    if ini is not None:
        files[ini] = ini_text
    _check_before_writing(sc, files)  # the experiment validates, every file can be written: else nothing is
    existing = [f for f in files if f.exists()]
    if existing and not args.force:
        raise scaffold.ScaffoldError(
            [Problem(str(f), 0, 0, "exists already; expected --force to overwrite it") for f in existing]
        )
    try:
        for f in files:
            f.parent.mkdir(parents=True, exist_ok=True)
        for f, text in files.items():
            f.write_text(text)
            print(f"wrote {f}")
    except OSError as exc:
        raise scaffold.ScaffoldError(
            [Problem(str(exc.filename or out_dir), 0, 0, f"cannot write: {exc.strerror or exc}")]
        ) from None
    print(f"\nstack {sc.name}: {compose_file} + Toxiproxy; links (deadair.link.* labels):")
    for link in [sc.entry, *sc.links]:
        print(f"  {link.name:<16} {link.label}")
    if sc.rewritten:
        print("addresses rewritten to go through the links (in the generated file only):")
        print("\n".join(f"  {line}" for line in sc.rewritten))
    if sc.by_hand:
        print("NOT rewritten: change these by hand in the generated file, or the traffic bypasses the link:")
        print("\n".join(f"  {line}" for line in sc.by_hand))
    for note in [*sc.notes, *([] if ini is not None or not ini_text else [ini_text])]:
        print(f"note: {note}")
    exp = load_experiment(sc.experiment_out)  # what init wrote passes `deadair validate` (checked before, too)
    print(f"\n{sc.experiment_out}: ok ({exp.title})")
    print(f"next: deadair run {sc.experiment_out}   (or: pytest {sc.experiment_out})")
    return 0


def _check_before_writing(sc, files: dict[Path, str]) -> None:
    """Nothing is written unless all of it can be: each file's folder is (or can be) a folder, and
    the experiment validates against the generated stack, both read from a scratch folder laid out
    as DIR will be."""
    import tempfile

    from chaos.language.loader import load_experiment
    from chaos.stack import scaffold

    problems = []
    for f in files:
        if f.is_dir():
            problems.append(Problem(str(f), 0, 0, "is a folder; expected a file init can write"))
        for parent in [f.parent, *f.parent.parents]:
            try:
                if parent.exists():
                    if not parent.is_dir():
                        problems.append(Problem(str(parent), 0, 0, f"is not a folder; expected one to hold {f.name}"))
                    break
            except OSError as exc:
                problems.append(Problem(str(parent), 0, 0, f"cannot be read: {exc.strerror or exc}"))
                break
    if problems:
        raise scaffold.ScaffoldError(list(dict.fromkeys(problems)))
    with tempfile.TemporaryDirectory(prefix="deadair-init-") as tmp:
        scratch = Path(tmp)
        for f, into in (
            (sc.compose_out, scratch / "compose" / sc.name / sc.compose_out.name),
            (sc.experiment_out, scratch / "experiments" / sc.experiment_out.name),
        ):
            into.parent.mkdir(parents=True, exist_ok=True)
            into.write_text(files[f])
        try:
            load_experiment(scratch / "experiments" / sc.experiment_out.name)
        except ExperimentError as exc:  # a fault of init's, not the user's: say so, and write nothing
            raise scaffold.ScaffoldError(
                [Problem(str(sc.experiment_out), p.line, p.column, f"(as generated) {p.message}") for p in exc.problems]
            ) from None


def _ask_links(compose_file: Path) -> list[str]:
    """At a terminal with no --link: which dependencies go behind links."""
    from chaos.stack import scaffold

    ports = scaffold.known_ports(scaffold.read_compose(compose_file).doc)
    known = [f"{svc}:{p}" for svc, found in ports.items() for p in sorted(found)]
    print(f"services of {compose_file} and the ports they are known to listen on: {', '.join(known) or 'none'}")
    try:
        answer = input("dependencies to put behind links (SERVICE:PORT, separated by spaces): ")
    except EOFError:  # Ctrl-D: no answer
        print()
        raise scaffold.ScaffoldError(
            [Problem("--link", 0, 0, "no answer; expected SERVICE:PORT, or --link SERVICE:PORT")]
        ) from None
    return answer.replace(",", " ").split()
