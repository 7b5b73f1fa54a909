"""The model registry: which bundles exist, which one is current, and how it got there.

``models/registry.json`` holds the current version and the history of promotions and
rollbacks; it is replaced atomically (write, fsync, rename), so a promotion killed at any
moment leaves the registry as it was or as it should be, never half-written. The
``models/current`` symlink follows it for tools that read a path; when the two disagree (a
kill between the two steps) the registry wins and the next write repairs the link.

Writers (train, promote, rollback in several processes at once) take an exclusive lock on
``models/.registry.lock`` across their whole read-modify-write, and each writes its own
temporary file: without both, concurrent writers lost each other's events, renamed each
other's half-written file into place or crashed on a temporary file another had renamed.
Readers take no lock: the rename means they see one whole registry or the next.

A model is named by its folder in the models folder everywhere here (the registry, the
listing); the version recorded in its ``bundle.json`` is only shown, since a copied or renamed
bundle (``cp -a a a-backup``) keeps the version it was trained as.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.bundle import (
    CURRENT_LINK,
    BundleError,
    check_current_replaceable,
    is_work_folder,
    read_meta,
    set_current,
)
from service.locks import exclusive_lock

REGISTRY_FILE = "registry.json"
LOCK_FILE = ".registry.lock"
# A version id is a folder name in the models folder: nothing that could name the folder
# itself ("."), another place ("../x", "a/b") or the registry's own files.
VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

log = logging.getLogger(__name__)


@dataclass
class ModelEntry:
    """One bundle in the models folder. ``version`` is its folder name, the name the registry
    and every command use; ``recorded_version`` is what its ``bundle.json`` says (differs for
    a copied or renamed bundle, None when missing). ``distillation``: what a student's
    ``bundle.json`` records of its teacher (empty for a model that is not a student)."""

    version: str
    path: Path
    created_at: str
    fingerprint: str
    macro_f1: float | None
    current: bool
    recorded_version: str | None = None
    distillation: dict[str, Any] = field(default_factory=dict)


def _registry_path(models_dir: str | Path) -> Path:
    return Path(models_dir) / REGISTRY_FILE


def read_registry(models_dir: str | Path) -> dict[str, Any]:
    """``{"current": version or None, "history": [events]}``; ``BundleError`` naming the file
    when ``registry.json`` is not of that shape (never a bare JSON or type error later)."""
    path = _registry_path(models_dir)
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BundleError(f"{path} is not valid JSON ({exc}); restore or fix it") from exc
        _check_registry(path, data)
        return data
    link = Path(models_dir) / CURRENT_LINK
    current = link.resolve().name if link.exists() else None  # from before the registry
    return {"current": current, "history": []}


def _check_registry(path: Path, data: Any) -> None:
    """Refuse, naming ``path`` and the problem, a registry other code would trip over."""
    if not isinstance(data, dict):
        raise BundleError(f"{path} is not a JSON object with current and history")
    if "current" not in data or not (data["current"] is None or isinstance(data["current"], str)):
        raise BundleError(f"{path}: current must be a version name (a string) or null")
    history = data.get("history")
    if not isinstance(history, list):
        raise BundleError(f"{path}: history must be a list of events")
    for k, event in enumerate(history):
        # The keys the rollback order and ``models list`` read from every event.
        if not isinstance(event, dict) or not all(
            isinstance(event.get(key), str) for key in ("time", "action", "version")
        ):
            raise BundleError(
                f"{path}: history event {k} is not an object with time, action and version"
            )


def _registry_lock(models_dir: str | Path) -> contextlib.AbstractContextManager[None]:
    """Hold the exclusive registry lock (waiting until other writers are done)."""
    return exclusive_lock(Path(models_dir) / LOCK_FILE)


def _write_registry(models_dir: str | Path, data: dict[str, Any]) -> None:
    """Replace the registry atomically; the caller holds :func:`_registry_lock`."""
    path = _registry_path(models_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name of its own ("x": never another's file): with one fixed name, a second writer
    # truncated the first's file before it was renamed into place (readers saw it empty).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with tmp.open("x", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
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


def may_become_current(
    models_dir: str | Path, champion: str | None, gated_against: Path | None = None
) -> bool:
    """The champion gate every new model passes (``train``, ``distill``): whether it may be
    made current by the run that wrote it, without ``models promote``. Only when there was no
    current model (``champion``, read when the run began, is None: the first model), or when
    the run checked it against the champion itself (``gated_against``, the bundle it was
    compared with, is the champion's folder: a student judged against its teacher). Otherwise
    it is a challenger, for ``models promote`` to compare with the champion."""
    if champion is None:
        return True
    if gated_against is None:
        return False
    return Path(gated_against).resolve() == (Path(models_dir) / champion).resolve()


def set_current_version(
    models_dir: str | Path,
    version: str,
    action: str,
    forced: bool = False,
    reason: str = "",
    replacing: str | None | object = ...,
) -> dict[str, Any]:
    """Make the bundle in the folder ``version`` current and record why (``action``: train,
    promote, rollback). The folder name is what the registry records; its ``bundle.json`` may
    record another version (a copied or renamed bundle) and that is allowed: the folder is
    the model's name everywhere here. ``replacing``: the current version the caller checked
    the new one against (a promotion's champion); ``BundleError`` and no change when another
    writer has made a different one current since."""
    with _registry_lock(models_dir):
        data = read_registry(models_dir)
        if replacing is not ... and data["current"] != replacing:
            raise BundleError(
                f"the current model changed to {data['current']} while {version} was "
                f"compared with {replacing}; nothing changed, run the command again"
            )
        return _set_current_version_locked(models_dir, data, version, action, forced, reason)


def set_current_unless_changed(
    models_dir: str | Path, version: str, action: str, replacing: str | None | object
) -> bool:
    """:func:`set_current_version` for a model that took minutes to make (``train``,
    ``distill``): False, and nothing changed, when another model became current since the run
    read ``replacing`` (that one was never compared with it, so it stays a challenger).
    Errors that are not such a change (a missing bundle, a broken registry) still raise."""
    try:
        set_current_version(models_dir, version, action, replacing=replacing)
    except BundleError:
        if replacing is ... or current_version(models_dir) == replacing:
            raise
        return False
    return True


def _set_current_version_locked(
    models_dir: str | Path,
    data: dict[str, Any],
    version: str,
    action: str,
    forced: bool,
    reason: str,
) -> dict[str, Any]:
    """:func:`set_current_version` for a caller that holds :func:`_registry_lock` and has
    read the registry (``data``) under it."""
    path = Path(models_dir) / version
    if is_work_folder(path):
        raise BundleError(f"{path} is a bundle still being written (or left by a killed run)")
    read_meta(path)  # refuses a missing or incomplete bundle before anything changes
    # Else the registry would move and the link swap then fail: a traceback after a
    # promotion that had happened.
    check_current_replaceable(models_dir)
    _remove_stale_temporaries(models_dir)
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


def _remove_stale_temporaries(models_dir: str | Path) -> None:
    """Remove the temporary registry files and links of writers killed mid-write: every
    writer makes them while holding the lock, so under the lock any still there are stale
    (their names are unique, so nothing else would ever replace them)."""
    folder = Path(models_dir)
    for pattern in (f".{REGISTRY_FILE}.*.tmp", f".{CURRENT_LINK}.*.tmp"):
        for stale in folder.glob(pattern):
            if stale.is_symlink() or stale.is_file():
                stale.unlink(missing_ok=True)


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
    return _rollback_target(read_registry(models_dir))


def _rollback_target(data: dict[str, Any]) -> str:
    stack = _promotion_stack(data["history"])
    if len(stack) < 2:
        raise BundleError("nothing to roll back to: the registry has no earlier current model")
    return stack[-2]


def rollback(models_dir: str | Path) -> dict[str, Any]:
    """Return to the model that was current before the current one was put in place
    (repeated rollbacks walk further back)."""
    # One lock from reading the target to writing: two rollbacks at once step back twice,
    # never both to the same model.
    with _registry_lock(models_dir):
        data = read_registry(models_dir)
        target = _rollback_target(data)
        return _set_current_version_locked(
            models_dir, data, target, "rollback", False, f"from {data['current']}"
        )


def list_models(models_dir: str | Path) -> list[ModelEntry]:
    """Every complete bundle in ``models_dir``, oldest first, named by folder. A bundle whose
    ``bundle.json`` cannot be read is left out with a warning naming its folder, so one bad
    folder does not hide the others."""
    current = current_version(models_dir)
    entries = []
    for path in sorted(Path(models_dir).iterdir()) if Path(models_dir).is_dir() else []:
        if path.is_symlink() or is_work_folder(path) or not (path / "bundle.json").is_file():
            continue
        try:
            meta = read_meta(path)
        except BundleError as exc:
            log.warning("skipping %s: %s", path, exc)
            continue
        model = _as_dict(_as_dict(meta.get("metrics")).get("model"))
        fingerprint = _as_dict(meta.get("training_data")).get("fingerprint")
        macro_f1 = model.get("macro_f1")
        created_at = meta.get("created_at")
        recorded = meta.get("version")
        entries.append(
            ModelEntry(
                version=path.name,
                path=path,
                created_at=str(created_at) if created_at is not None else "",
                fingerprint=fingerprint[:12] if isinstance(fingerprint, str) else "",
                macro_f1=(
                    float(macro_f1)
                    if isinstance(macro_f1, int | float) and not isinstance(macro_f1, bool)
                    else None
                ),
                current=path.name == current,
                recorded_version=str(recorded) if recorded is not None else None,
                distillation=_as_dict(meta.get("distillation")),
            )
        )
    return sorted(entries, key=lambda e: (e.created_at, e.version))


def _as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else empty (a hand-edited bundle.json)."""
    return value if isinstance(value, dict) else {}


def _who() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in some containers
        return "unknown"
