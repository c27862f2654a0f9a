"""A fingerprint of the stack a run measured: the images that ran and the files that made them.

Tonight's numbers are comparable with last night's only if the system under test is the same.
The fingerprint says what "the same" meant for a run, in three parts, each hashed on its own so
that a difference can be named:
- `images`: per service, the image id of its container (what actually ran; a rebuilt image with
  any changed config baked in gets a new id), or of its declared image when it has no container;
- `compose_file`: the SHA-256 of the compose file's bytes;
- `files`: the SHA-256 of every file the compose file mounts (bind volumes, `env_file`, top-level
  `configs` and `secrets` files) or builds into an image (the sources of each Dockerfile's COPY
  and ADD, and the Dockerfile itself), by path relative to the compose file's folder.
`id` is the first 12 hex digits of the SHA-256 of the three together.

Reading files needs no engine; the images need one call to list the containers (the engine
client's own timeout bounds it).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shlex
from pathlib import Path
from typing import Any

from chaos.stack.definition import StackDefinition

MAX_FILES = 2000  # a build context this large is hashed in part, and the fingerprint says so
MAX_BYTES = 64 * 1024 * 1024  # per file; a larger one is hashed by its size and mtime instead


def fingerprint(definition: StackDefinition, image_ids: dict[str, str]) -> dict[str, Any]:
    """The stack's fingerprint from its definition and the image id each service ran."""
    base = definition.compose_file.resolve().parent
    paths, truncated = _input_files(definition)
    files = {_relative(path, base): _file_hash(path) for path in paths}
    out: dict[str, Any] = {
        "images": dict(sorted(image_ids.items())),
        "compose_file": _file_hash(definition.compose_file),
        "files": files,
    }
    if truncated:
        out["note"] = f"more than {MAX_FILES} input files: the first {MAX_FILES} hashed"
    out["id"] = fingerprint_id(out)
    return out


def fingerprint_id(parts: dict[str, Any]) -> str:
    body = {k: parts.get(k) for k in ("images", "compose_file", "files")}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]


def running_image_ids(stack: Any) -> dict[str, str]:
    """Service -> image id of its container; services without one get their declared image's id."""
    out: dict[str, str] = {}
    for c in stack.containers():
        service = c.labels.get("com.docker.compose.service")
        if service:
            out[service] = str(c.attrs.get("Image") or "")
    for service, spec in stack.definition.services.items():
        if service not in out and spec.get("image"):
            try:
                out[service] = str(stack.docker.images.get(spec["image"]).id)
            except Exception:
                out[service] = f"missing: {spec['image']}"
    return out


def differences(a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[str]:
    """What differs between two fingerprints, in words ("images: origin, lb", "compose file",
    "files: config/haproxy.cfg"); empty when they are the same."""
    if not a or not b:
        return [] if a == b else ["fingerprint not recorded"]
    if a.get("id") == b.get("id"):
        return []
    out = []
    for part, label in (("images", "images"), ("files", "files")):
        x, y = a.get(part) or {}, b.get(part) or {}
        changed = sorted(k for k in set(x) | set(y) if x.get(k) != y.get(k))
        if changed:
            shown = ", ".join(changed[:6]) + (f" and {len(changed) - 6} more" if len(changed) > 6 else "")
            out.append(f"{label}: {shown}")
    if a.get("compose_file") != b.get("compose_file"):
        out.append("compose file")
    return out or ["fingerprint"]


def _input_files(definition: StackDefinition) -> tuple[list[Path], bool]:
    """The first MAX_FILES files the compose file mounts or builds, in order, and whether there
    were more: a folder is walked only as far as the budget (a mount of `/`, as node-exporter's,
    would list the whole disk)."""
    files: set[Path] = set()
    for declared in sorted(_inputs(definition)):
        found, more = _files_under(declared, MAX_FILES + 1 - len(files))
        files |= found
        if more or len(files) > MAX_FILES:
            return sorted(files)[:MAX_FILES], True
    return sorted(files), False


def _inputs(definition: StackDefinition) -> set[Path]:
    """Every path (file or folder) the compose file mounts or builds (see the module's docstring).
    A malformed entry (Compose would refuse the file) is skipped: the fingerprint describes, it
    does not validate."""
    base = definition.compose_file.resolve().parent
    doc_paths: set[Path | None] = set()
    for spec in definition.services.values():
        for vol in _listed(spec.get("volumes")):
            src = _bind_source(vol)
            if src:
                doc_paths.add(_under(base, src))
        env_files = spec.get("env_file") or []
        for item in [env_files] if isinstance(env_files, str | dict) else _listed(env_files):
            path = item.get("path") if isinstance(item, dict) else item
            if isinstance(path, str) and path:
                doc_paths.add(_under(base, path))
        build = spec.get("build")
        if isinstance(build, str | dict) and build:
            doc_paths |= _build_inputs(base, build)
    for section in ("configs", "secrets"):
        for item in (_top_level(definition, section) or {}).values():
            if isinstance(item, dict) and isinstance(item.get("file"), str) and item["file"]:
                doc_paths.add(_under(base, item["file"]))
    return {p for p in doc_paths if p is not None}


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _top_level(definition: StackDefinition, section: str) -> dict[str, Any] | None:
    """A top-level section of the compose file as the definition read it (one reader for all)."""
    value = definition.document.get(section)
    return value if isinstance(value, dict) else None


def _bind_source(vol: Any) -> str | None:
    """The host path of a bind volume (short `./src:/dst[:ro]` or long `{type: bind, source}`)."""
    if isinstance(vol, dict):
        return str(vol["source"]) if vol.get("type") == "bind" and vol.get("source") else None
    if not isinstance(vol, str):
        return None
    src = vol.split(":", 1)[0]
    return src if src.startswith((".", "/", "~")) and ":" in vol else None


def _build_inputs(base: Path, build: str | dict[str, Any]) -> set[Path | None]:
    if isinstance(build, str):
        context, dockerfile = _under(base, build), "Dockerfile"
    else:
        context = _under(base, str(build.get("context", ".")))
        dockerfile = str(build.get("dockerfile", "Dockerfile"))
    if context is None:
        return set()
    df = _under(context, dockerfile)
    if df is None:
        return set()
    out: set[Path | None] = {df}
    try:
        text = df.read_text()
    except OSError:
        return out
    for args in _copy_sources(text):
        for src in args:
            if "://" in src or "$" in src:
                continue  # a URL or a build argument: not a file of the context
            matches = glob.glob(str(_under(context, src)))
            out |= {Path(m) for m in matches} or {_under(context, src)}
    return out


def _copy_sources(dockerfile: str) -> list[list[str]]:
    """The source arguments of each COPY and ADD of a Dockerfile (not `--from` a stage or image)."""
    joined = dockerfile.replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        words = line.strip()
        if not words or words.startswith("#"):
            continue
        instr, _, rest = words.partition(" ")
        if instr.upper() not in ("COPY", "ADD"):
            continue
        rest = rest.strip()
        if rest.startswith("["):
            try:
                args = [str(a) for a in json.loads(rest)]
            except ValueError:
                continue
        else:
            try:
                args = shlex.split(rest)
            except ValueError:
                continue
        flags = [a for a in args if a.startswith("--")]
        if any(f.startswith("--from") for f in flags):
            continue
        args = [a for a in args if not a.startswith("--")]
        if len(args) >= 2:
            out.append(args[:-1])
    return out


def _under(base: Path, path: str) -> Path | None:
    """path from base, resolved; None for a path no file can have (a NUL byte)."""
    try:
        p = Path(os.path.expanduser(path))
        return (p if p.is_absolute() else base / p).resolve()
    except (ValueError, OSError, RuntimeError):
        return None


def _files_under(path: Path, budget: int) -> tuple[set[Path], bool]:
    """The files at path (itself, or a folder's, in a fixed order), at most budget of them, and
    whether there were more. A missing path is kept, hashed as missing, so that it appearing
    later is a change."""
    if path.is_file() or not path.is_dir():
        return {path}, False
    out: set[Path] = set()
    for root, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(names):
            f = Path(root) / name
            if f.is_file():
                out.add(f)
                if len(out) >= budget:
                    return out, True
    return out, False


def _file_hash(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return "missing"
    if st.st_size > MAX_BYTES:
        return f"size {st.st_size} mtime {int(st.st_mtime)}"
    h = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return "unreadable"
    return h.hexdigest()


def _relative(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path, base)
    except ValueError:
        return str(path)
