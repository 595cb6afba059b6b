"""A directory laid out as the kubelet lays out a Secret volume, updated as the kubelet does it.

`<dir>/<key>` -> `..data/<key>`, `..data` -> `..<timestamp>/`; an update writes a new timestamped
directory, points a temporary link at it and renames that over `..data` (one atomic step), then
removes the old directory (AtomicWriter in kubernetes/pkg/volume/util/atomic_writer.go).
"""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

_serial = itertools.count()


class SecretVolume:
    def __init__(self, root: Path, key: str = "token") -> None:
        self.root = root
        self.key = key
        root.mkdir(parents=True, exist_ok=True)
        self._current: Path | None = None

    @property
    def path(self) -> Path:
        """What a container is told to read: `<dir>/<key>`."""
        return self.root / self.key

    def write(self, content: str | bytes) -> None:
        """Publish new content the kubelet's way (the first call creates the layout)."""
        data = content.encode() if isinstance(content, str) else content
        stamped = self.root / f"..2026_01_01_00_00_00.{next(_serial)}"
        stamped.mkdir()
        (stamped / self.key).write_bytes(data)
        tmp = self.root / "..data_tmp"
        os.symlink(stamped.name, tmp)
        os.replace(tmp, self.root / "..data")
        if not self.path.is_symlink():
            os.symlink(f"..data/{self.key}", self.path)
        if self._current is not None:
            shutil.rmtree(self._current)
        self._current = stamped

    def remove_data(self) -> None:
        """The target goes away (a deleted Secret, a volume torn down): the link dangles."""
        if self._current is not None:
            shutil.rmtree(self._current)
            self._current = None
