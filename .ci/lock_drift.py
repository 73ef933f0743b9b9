"""Print how the running environment differs from a pip-compile lock file; exit 0 either way.

``make test-latest`` runs it before the suite, so its log starts with the upgrades under test.
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import distributions
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version


def locked_versions(lock: Path) -> dict[str, str]:
    pins = {}
    for line in lock.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", line)
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def same_version(a: str, b: str) -> bool:
    """Equal as PEP 440 versions (``0.1.1-2209072238`` is ``0.1.1.post2209072238``), else as text."""
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def main(lock: str) -> int:
    pins = locked_versions(Path(lock))
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in distributions()}
    changed = sorted((name, pins[name], version) for name, version in installed.items()
                     if name in pins and not same_version(pins[name], version))
    added = sorted(set(installed) - set(pins) - {"pip", "srnas-nni"})
    missing = sorted(set(pins) - set(installed))
    print(f"against {lock}: {len(changed)} changed, {len(added)} not in the lock, {len(missing)} not installed")
    for name, old, new in changed:
        print(f"  {name}: {old} -> {new}")
    for name in added:
        print(f"  {name}: {installed[name]} (not in the lock)")
    for name in missing:
        print(f"  {name}: {pins[name]} (locked, not installed)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "requirements.lock"))
