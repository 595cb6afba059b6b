"""Files the servo writes that others must not read or redirect (TLS keys, the outbox): created
0600, never through a symbolic link. A link planted where such a file goes (a shared /tmp)
would otherwise send a private key, or the events, wherever it points.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
_NOFOLLOW = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def open_own_dir(directory: Path) -> int:
    """A descriptor of `directory` (created 0700 if missing): refused (OSError) when it is a
    symbolic link or belongs to someone else, who could swap the files in it."""
    directory.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW)
    st = os.fstat(fd)
    if st.st_uid != os.geteuid():
        os.close(fd)
        raise PermissionError(f"{directory} belongs to uid {st.st_uid}, not to this process")
    return fd


def write_private_files(directory: Path, files: Mapping[str, bytes]) -> list[Path]:
    """Write each file (0600) into `directory`, replacing what is there (a link included, never
    followed): each goes to a fresh temporary name first, then is renamed over the old one."""
    dir_fd = open_own_dir(directory)
    try:
        for name, data in files.items():
            tmp = f".{name}.{secrets.token_hex(6)}.tmp"
            fd = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, PRIVATE_FILE, dir_fd=dir_fd
            )
            try:
                os.fchmod(fd, PRIVATE_FILE)  # whatever the umask
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    return [directory / name for name in files]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def ensure_private_file(path: Path) -> None:
    """Make `path` a regular file of ours with mode 0600: created if missing, else checked
    (not a link, a regular file) and its mode set. For files another library opens by name
    (SQLite), which then keeps that mode for its own side files."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, PRIVATE_FILE)
    except FileExistsError:
        # ELOOP for a link; O_NONBLOCK so that a FIFO planted there cannot block the open.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{path} is not a regular file")
        if stat.S_IMODE(st.st_mode) != PRIVATE_FILE:
            os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)


def refuse_link(path: Path) -> None:
    """OSError when `path` is a symbolic link (absent is fine)."""
    if path.is_symlink():
        raise OSError(f"{path} is a symbolic link; refusing to follow it")
