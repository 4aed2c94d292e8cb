"""The highest sequence number `edgekit ota build` gave each board/kind, so the next build can
warn.

A sequence number only grows (anti-rollback, SPEC 9.5) and ends at 2^63-2: one release with a
typo or a wrong unit (a timestamp in ms or ns) moves every device that installs it that far
for good, and nothing numbered below can follow. So a build whose --seq jumps more than
--max-seq-step above the highest one built for the same board and kind is warned about, and so
is one not above it (the devices that took that one would refuse it as a rollback).

The record is $EDGEKIT_HOME/ota/builds.json: {"version": 1, "last": {"BOARD/KIND": {"seq",
"version", "file"}}}, replaced atomically. It is advice, not a lock: a damaged record stops
the build with a one-line error (delete the file to start afresh), a missing one warns of
nothing.
"""
import json
import os
from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit.ota import manifest as man
from edgekit.paths import edgekit_home

DEFAULT_MAX_STEP = 1000
FORMAT_VERSION = 1


class SeqLogError(EdgekitError):
    """The build record is unreadable; the message names the file and what to do."""


def default_path() -> Path:
    return edgekit_home() / "ota" / "builds.json"


def load(path=None) -> dict:
    """{"BOARD/KIND": {"seq": int, "version": str, "file": str}} from the record (empty when
    there is none yet)."""
    path = Path(path or default_path())
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise SeqLogError(f"cannot read the OTA build record {path}: {exc.strerror}") from None
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _damaged(path, f"not JSON ({type(exc).__name__})")
    if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION \
            or not isinstance(doc.get("last"), dict):
        raise _damaged(path, f"not a version {FORMAT_VERSION} record")
    for target, entry in doc["last"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("version"), str) \
                or not isinstance(entry.get("file"), str):
            raise _damaged(path, f"entry {target!r} is not a map with version and file")
        try:
            man.check_seq(entry.get("seq"))
        except EdgekitError:
            raise _damaged(path, f"entry {target!r} has sequence {entry.get('seq')!r}, "
                                 f"not 1..{man.SEQ_MAX}") from None
    return doc["last"]


def _damaged(path, why):
    return SeqLogError(f"the OTA build record {path} is damaged ({why}): delete it to start "
                       "the record afresh (it only feeds the sequence warnings)")


def warnings(last: dict, board, kind, seq, max_step=DEFAULT_MAX_STEP, explicit=True) -> list:
    """What is suspicious about building `seq` for board/kind after `last` (load()'s result).
    A time-based default sequence (explicit=False) is not checked for its step: it follows the
    clock, not a typed number."""
    prev = last.get(f"{board}/{kind}")
    if prev is None:
        return []
    before = (f"{prev['seq']}, the highest built for {board}/{kind} ({prev['version']}, "
              f"{prev['file']})")
    if seq <= prev["seq"]:
        fix = (f"build with --seq {prev['seq'] + 1} or more" if prev["seq"] < man.SEQ_MAX
               else "no sequence is above it, so they can take no further update")
        return [f"sequence {seq} is not above {before}: devices that installed that one refuse "
                f"this as a rollback; {fix}"]
    if explicit and max_step and seq - prev["seq"] > max_step:
        return [f"sequence {seq} jumps {seq - prev['seq']} above {before}, more than "
                f"--max-seq-step {max_step}: a device that installs it refuses every later "
                f"update numbered {seq} or below, and {man.SEQ_MAX} is the end. If that was a "
                f"typo, rebuild with --seq {prev['seq'] + 1}"]
    return []


def record(last: dict, board, kind, seq, version, file, path=None):
    """Remember `seq` for board/kind when it is the highest built (atomic replace)."""
    prev = last.get(f"{board}/{kind}")
    if prev is not None and prev["seq"] >= seq:
        return
    path = Path(path or default_path())
    doc = {"version": FORMAT_VERSION, "last": dict(last)}
    doc["last"][f"{board}/{kind}"] = {"seq": seq, "version": version, "file": str(file)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
