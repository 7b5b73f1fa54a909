"""The model registry: which bundles exist, which one is current, and how it got there.

``models/registry.json`` holds the current version and the history of promotions and
rollbacks; it is replaced atomically (write, fsync, rename), so a promotion killed at any
moment leaves the registry as it was or as it should be, never half-written. The
``models/current`` symlink follows it for tools that read a path; when the two disagree (a
kill between the two steps) the registry wins and the next write repairs the link.
"""

from __future__ import annotations

import getpass
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.bundle import CURRENT_LINK, BundleError, is_work_folder, read_meta, set_current

REGISTRY_FILE = "registry.json"
# A version id is a folder name in the models folder: nothing that could name the folder
# itself ("."), another place ("../x", "a/b") or the registry's own files.
VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass
class ModelEntry:
    """One bundle in the models folder."""

    version: str
    path: Path
    created_at: str
    fingerprint: str
    macro_f1: float | None
    current: bool


def _registry_path(models_dir: str | Path) -> Path:
    return Path(models_dir) / REGISTRY_FILE


def read_registry(models_dir: str | Path) -> dict[str, Any]:
    """``{"current": version or None, "history": [events]}``."""
    path = _registry_path(models_dir)
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    link = Path(models_dir) / CURRENT_LINK
    current = link.resolve().name if link.exists() else None  # from before the registry
    return {"current": current, "history": []}


def _write_registry(models_dir: str | Path, data: dict[str, Any]) -> None:
    path = _registry_path(models_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def current_version(models_dir: str | Path) -> str | None:
    return read_registry(models_dir)["current"]


def current_path(models_dir: str | Path) -> Path:
    """The current bundle's folder (the registry's choice)."""
    version = current_version(models_dir)
    if version is None:
        raise BundleError(
            f"no current model in {models_dir}: train one (cxthemes train) or pass --model"
        )
    path = Path(models_dir) / version
    if not (path / "bundle.json").is_file():
        problem = "is incomplete (no bundle.json) in" if path.is_dir() else "is missing from"
        raise BundleError(f"the current model {version} {problem} {models_dir}")
    return path.resolve()


def set_current_version(
    models_dir: str | Path,
    version: str,
    action: str,
    forced: bool = False,
    reason: str = "",
) -> dict[str, Any]:
    """Make ``version`` current and record why (``action``: train, promote, rollback)."""
    path = Path(models_dir) / version
    if is_work_folder(path):
        raise BundleError(f"{path} is a bundle still being written (or left by a killed run)")
    read_meta(path)  # refuses a missing or incomplete bundle before anything changes
    data = read_registry(models_dir)
    event = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "action": action,
        "version": version,
        "previous": data["current"],
        "forced": forced,
        "by": _who(),
    }
    if reason:
        event["reason"] = reason
    data["history"].append(event)
    data["current"] = version
    _write_registry(models_dir, data)
    set_current(path, models_dir)
    return event


def check_new_version(
    models_dir: str | Path, version: str, protected: tuple[str, ...] = ()
) -> Path:
    """The folder a new bundle ``version`` will be written to, or ``ValueError`` before any
    work is done: writing a bundle replaces its folder, so the name must be a plain version id
    and must not name the current model, a model that has been current (a rollback target),
    one of ``protected`` (the distill teacher), or a folder that is not a bundle."""
    if (
        not VERSION_RE.fullmatch(version)
        or version in (CURRENT_LINK, REGISTRY_FILE)
        or is_work_folder(version)
    ):
        raise ValueError(
            f"{version!r} is not a version id: use letters, digits, '.', '_' and '-' (up to 100, "
            f"starting with a letter or digit), not {CURRENT_LINK!r} or {REGISTRY_FILE!r}"
        )
    path = Path(models_dir) / version
    if path.is_symlink() or (path.exists() and not (path / "bundle.json").is_file()):
        raise ValueError(f"{path} exists and is not a model bundle; choose another --version")
    registry = read_registry(models_dir)
    if version == registry["current"]:
        raise ValueError(
            f"{path} is the current model: train under another --version, then promote"
        )
    if version in protected:
        raise ValueError(f"{path} is the model this run reads; choose another --version")
    if path.exists() and any(e["version"] == version for e in registry["history"]):
        raise ValueError(
            f"{path} has been the current model (a rollback target); choose another --version"
        )
    return path


def _promotion_stack(history: list[dict[str, Any]]) -> list[str]:
    """Current models in the order they were put in place; a rollback takes the top off."""
    stack: list[str] = []
    for event in history:
        if event["action"] == "rollback" and stack:
            stack.pop()
            if not stack or stack[-1] != event["version"]:
                stack.append(event["version"])
        else:
            stack.append(event["version"])
    return stack


def rollback_target(models_dir: str | Path) -> str:
    """The version :func:`rollback` would make current."""
    stack = _promotion_stack(read_registry(models_dir)["history"])
    if len(stack) < 2:
        raise BundleError("nothing to roll back to: the registry has no earlier current model")
    return stack[-2]


def rollback(models_dir: str | Path) -> dict[str, Any]:
    """Return to the model that was current before the current one was put in place
    (repeated rollbacks walk further back)."""
    target = rollback_target(models_dir)
    current = read_registry(models_dir)["current"]
    return set_current_version(models_dir, target, "rollback", reason=f"from {current}")


def list_models(models_dir: str | Path) -> list[ModelEntry]:
    """Every complete bundle in ``models_dir``, oldest first."""
    current = current_version(models_dir)
    entries = []
    for path in sorted(Path(models_dir).iterdir()) if Path(models_dir).is_dir() else []:
        if path.is_symlink() or is_work_folder(path) or not (path / "bundle.json").is_file():
            continue
        meta = read_meta(path)
        model = (meta.get("metrics") or {}).get("model") or {}
        entries.append(
            ModelEntry(
                version=meta["version"],
                path=path,
                created_at=meta.get("created_at", ""),
                fingerprint=(meta.get("training_data") or {}).get("fingerprint", "")[:12],
                macro_f1=model.get("macro_f1"),
                current=meta["version"] == current,
            )
        )
    return sorted(entries, key=lambda e: e.created_at)


def _who() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in some containers
        return "unknown"
