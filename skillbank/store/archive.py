"""Export archives: what ``skillbank import`` accepts, checked while it streams in.

An archive is a ``.tar.gz`` of a manifest (``skillbank-export.json``: every version's metadata,
lineage and files) and ``objects/<sha256>`` files. :func:`stage` streams it into a scratch folder,
checking sizes before reading and sha256s while copying; :func:`check_manifest` then checks every
field and parses every skill and data file, so that nothing enters a store before all of it passed.
"""

from __future__ import annotations

import errno
import hashlib
import json
import tarfile
import zlib
from pathlib import Path
from typing import Any

from skillbank.algos.buffer import ReplayBuffer
from skillbank.errors import SkillbankError, write_error
from skillbank.nn.skill import DESCRIPTION_FILE, WEIGHTS_FILE, Skill
from skillbank.store.entities import DATA_FILES, EXPORT_MANIFEST, SHA_RE, validate_name

MAX_IMPORT_BYTES = 4 << 30  # an archive's default cap, in all and per member (--max-size)
MAX_MANIFEST_BYTES = 16 << 20


def stage(file: Path, staging: Path, max_size: int) -> tuple[Any, dict[str, Path]]:
    """Stream an export archive's members into ``staging``, checking sizes before reading and sha256s
    while copying; returns the parsed manifest and the staged files by sha256."""
    manifest, staged, total = None, {}, 0
    try:
        with tarfile.open(file, "r|*") as tar:  # stream mode: one pass, one member in memory at most
            for member in tar:
                if not member.isfile():
                    raise SkillbankError(f"refusing {file}: member {member.name!r} is a link or special file")
                total += member.size
                if member.size > max_size or total > max_size:
                    raise SkillbankError(
                        f"refusing {file}: member {member.name!r} ({member.size:,} bytes) takes the archive past "
                        f"--max-size {max_size:,} bytes; raise --max-size if you trust it"
                    )
                source = tar.extractfile(member)
                if member.name == EXPORT_MANIFEST:
                    if member.size > MAX_MANIFEST_BYTES:
                        raise SkillbankError(f"refusing {file}: its manifest is {member.size:,} bytes")
                    manifest = json.loads(source.read())
                    continue
                parts = member.name.split("/")
                if len(parts) != 2 or parts[0] != "objects" or not SHA_RE.match(parts[1]):
                    raise SkillbankError(f"refusing {file}: unexpected member path {member.name!r}")
                digest, target = hashlib.sha256(), staging / parts[1]
                with open(target, "wb") as out:
                    while chunk := source.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
                if digest.hexdigest() != parts[1]:
                    raise SkillbankError(f"refusing {file}: {member.name} does not match its sha256")
                staged[parts[1]] = target
    except SkillbankError:
        raise
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EROFS):
            raise write_error(error, staging, total) from None
        raise SkillbankError(f"{file} is not a skillbank export archive: {error}") from None
    except (tarfile.TarError, EOFError, zlib.error, ValueError, TypeError, UnicodeDecodeError) as error:
        raise SkillbankError(f"{file} is not a skillbank export archive: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "skillbank-export":
        raise SkillbankError(f"refusing {file}: no {EXPORT_MANIFEST} manifest")
    return manifest, staged


MANIFEST_FIELDS = {
    "name": str, "ref": str, "created": str, "description": str, "files": dict, "parents": list, "tags": list,
    "metadata": dict, "task": (str, type(None)), "algorithm": (str, type(None)),
}  # fmt: skip


def check_manifest(manifest: dict[str, Any], staged: dict[str, Path], file: Any) -> list[dict[str, Any]]:
    """The manifest's versions, each checked field by field, with its skill and data files parsed."""
    entries = manifest.get("versions")
    if not isinstance(entries, list) or not entries:
        raise SkillbankError(f"refusing {file}: the manifest lists no versions")
    refs = set()
    for entry in entries:
        for key, kind in MANIFEST_FIELDS.items():
            if not isinstance(entry, dict) or not isinstance(entry.get(key), kind):
                raise SkillbankError(f"refusing {file}: a version's {key!r} in the manifest is missing or malformed")
        validate_name(entry["name"])
        for tag in entry["tags"]:
            validate_name(tag, "tag")
        refs.add(entry["ref"])
    for entry in entries:
        files = entry["files"]
        for filename, file_entry in files.items():
            if filename not in (DESCRIPTION_FILE, WEIGHTS_FILE, *DATA_FILES.values()):
                raise SkillbankError(f"refusing {file}: {entry['ref']} has an unknown file {filename!r}")
            if not isinstance(file_entry, dict) or file_entry.get("sha256") not in staged:
                raise SkillbankError(f"refusing {file}: {filename} of {entry['ref']} is missing from the archive")
            if file_entry.get("size") != staged[file_entry["sha256"]].stat().st_size:
                raise SkillbankError(f"refusing {file}: {filename} of {entry['ref']} has another size than listed")
        if DESCRIPTION_FILE not in files or WEIGHTS_FILE not in files:
            raise SkillbankError(f"refusing {file}: {entry['ref']} lacks {DESCRIPTION_FILE} or {WEIGHTS_FILE}")
        description, weights = (staged[files[name]["sha256"]].read_bytes() for name in (DESCRIPTION_FILE, WEIGHTS_FILE))
        Skill.from_bytes(description, weights)
        for kind, name in DATA_FILES.items():
            if name in files:
                check_data_file(staged[files[name]["sha256"]], kind)
        for parent in entry["parents"]:
            if not isinstance(parent, dict) or not isinstance(parent.get("ref"), str) or parent["ref"] not in refs:
                raise SkillbankError(f"refusing {file}: a parent of {entry['ref']} is not in the archive")
            validate_name(parent.get("relation"), "relation")
            if not isinstance(parent.get("info", {}), dict):
                raise SkillbankError(f"refusing {file}: a lineage edge of {entry['ref']} is malformed")
            parent.setdefault("info", {})
    return entries


def check_data_file(path: Path, kind: str) -> None:
    """A stored replay buffer or rollouts file's structure (names, shapes, dtypes), read without its data."""
    from skillbank.store.rollouts import check_rollouts

    if kind == "replay":
        ReplayBuffer.check_hdf5(path)
    else:
        check_rollouts(path)
