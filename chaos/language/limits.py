"""The limits of an experiment file, in one place (the README quotes them).

Each is far beyond any experiment a person writes (the largest in this repository is under 4 KB,
6 levels deep, with a dozen steps and a method of a few minutes) and low enough that a hostile or
broken file is refused within seconds and a few tens of MB by `deadair validate`, before anything
costly is done: the file's size before it is read, nesting and aliases while YAML is composed
(before anything is expanded), variables before they are substituted, steps and the run's length
before the method is planned. Crossing one is a located problem (exit 2) like any other.
"""

from __future__ import annotations

MAX_FILE_BYTES = 128 * 1024
"""An experiment file's size. 128 KiB is some 35 times the largest experiment here (or about
3,100 short steps written out, `- {at: 5s, fault: mic.cut, for: 8s}`; 1,500 with a target and
parameters). The time to validate grows with it, in PyYAML's pure-Python parser (the only one
used: libyaml's disagrees with it on what is valid YAML) and the JSON Schema: a file at the limit
full of flat valid steps takes ~1.5 s of CPU; the worst shape measured, values nested to the
depth limit over and over, ~2.5 to 3 s of CPU and ~100 MB; at 256 KiB it would be twice that,
past "within seconds"."""

MAX_DEPTH = 64
"""How deeply values may nest: the document is level 1, and a mapping, list or scalar is one level
below what holds it (63 brackets around a number are 64 levels). An experiment nests 6 (its
scalars counted); an HTTP probe's JSON
body may add a dozen. 64 keeps every later pass (which walks the document recursively) far from
Python's recursion limit (1000 frames)."""

MAX_VALUES = 100_000
"""Values (scalars, mappings and lists) in the document once every YAML alias (*name) is
expanded. A 10,000-step method written out in full has about 50,000; the "billion laughs" (nine
levels of nine aliases) would expand to 387 million, and is refused while it is composed, before
anything is expanded."""

MAX_DOCUMENT_CHARS = 1024 * 1024
"""Characters of the document's values (scalars, keys included) once every YAML alias, Chaos
Toolkit `ref` and configuration `${name}` is expanded: 1 MiB, 8 times the largest file. An
alias to a long string counts as a copy of it, so that `[*s, *s, ...]` cannot make a value of
gigabytes that every later pass (the schema's messages, a probe's JSON body) would copy."""

MAX_STACK_NAME = 255
"""The characters of `stack:` (a folder under compose/, or a path to a compose file): 255 is the
longest file name Linux and macOS allow; a longer one could only fail as an OSError."""

MAX_VARIABLE_CHARS = 65_536
"""The characters of a variable's value once the variables it uses are substituted (`vars: {a:
"${b}${b}", b: "${c}${c}", ...}` doubles at every level). 64 KiB holds any URL, argument or body."""

MAX_EXPANDED_CHARS = 1024 * 1024
"""Characters that substituting `${name}` may add to the whole document: 1 MiB, 8 times the
largest file, so that many uses of a long variable cannot make a document no file could be."""

MAX_STEPS = 10_000
"""Occurrences in the method once repeating steps (`every` with `times` or `until`) are expanded:
a fault every second for 2.7 hours. The plan, the journal and the report hold one entry each."""

MAX_RUN_SECONDS = 24 * 3600.0
"""The end of the method (its last occurrence's `at` plus its `for`, a repeat's `until`, a join's
arrivals) and each of `windows`: 24 hours. A soak test lasts hours; an experiment that would run
for days is a typo (`until: 100h` for `100s`)."""


MAX_PROBLEMS = 100
"""Problems reported for one file: the first 99 and a line that says how many more there are.
A file of 3,000 wrong steps would otherwise print 3,000 lines (reading them is the user's cost)."""


def describe(seconds: float) -> str:
    """24h, 1.5h, 90s: a time as an experiment would write it (to 3 significant digits)."""
    if seconds >= 3600:
        return f"{seconds / 3600:.3g}h"
    return f"{seconds:.3g}s"


SINGLE_PROCESS_MAX = 100_000  # listeners one process may hold; more need listeners.workers (chaos.listen.shards)


def one_process_problem(listeners: object) -> str | None:
    """Why a listeners section asks more of one process than it holds (None: it does not)."""
    if not isinstance(listeners, dict):
        return None
    count = listeners.get("count")
    if isinstance(count, int) and count > SINGLE_PROCESS_MAX and listeners.get("workers") is None:
        return (
            f"listeners.count {count} is more than one process holds ({SINGLE_PROCESS_MAX}): "
            "set listeners.workers (auto, or a number of shards) to spread them over a cluster"
        )
    return None
