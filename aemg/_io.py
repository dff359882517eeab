"""Small file helpers shared by every writer of aemg: atomic writes and checked JSON reads.

A reader (or a crash) never sees half a file: data go to a temporary file in the same folder
(``.<name>.<random>.tmp``, which the archive and corpus writers delete on resume), are flushed to
disk, and replace the target with :func:`os.replace`; the folder entry is then synced.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

from .errors import DataError


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename inside ``path`` durable (no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a closed file's data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def current_umask() -> int:
    """This process's umask (from /proc where it can be read without changing it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # pragma: no cover - no /proc: read it by setting it (and back)
    os.umask(mask)
    return mask


def honour_umask(path: str | os.PathLike, folder: bool = False) -> None:
    """Give ``path`` the mode a plain ``open``/``mkdir`` would (0666 / 0777 less the umask):
    ``tempfile`` creates 0600 files and 0700 folders, which colleagues sharing a folder cannot read."""
    os.chmod(path, (0o777 if folder else 0o666) & ~current_umask())


def check_parent(path: str | os.PathLike) -> Path:
    """``path`` as a Path; DataError naming the parent folder when it is missing or not a folder."""
    path = Path(path)
    parent = path.parent
    if not parent.is_dir():
        raise DataError(parent, "is not a folder (the output cannot be written there)" if parent.exists()
                        else "folder does not exist (create it first, or choose another output)")
    return path


def atomic_write(path: str | os.PathLike, data: str | bytes, *, durable: bool = True) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` through a temporary file and a rename.

    ``durable=True`` also fsyncs the file and its folder, so the new content survives a power cut.
    The file gets the mode of a plain ``open`` under the umask. An OSError (a full disk, no
    permission) names ``path``, not the temporary file; the old content stays.
    """
    path = check_parent(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        honour_umask(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def file_digest(path: str | os.PathLike) -> tuple[int, str]:
    """``(bytes, sha256 hex)`` of a file (recorded when a shard is committed, checked when skipped)."""
    h, n = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
            n += len(chunk)
    return n, h.hexdigest()


def digest_problem(path: str | os.PathLike, want: dict | None) -> str | None:
    """What is wrong with ``path`` against its recorded ``{"bytes", "sha256"}`` (None: nothing;
    without a record only its presence is checked)."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    if not want:
        return None
    size = path.stat().st_size
    if size != want.get("bytes"):
        return f"{size} bytes, {want.get('bytes')} when committed (truncated or replaced)"
    if file_digest(path)[1] != want.get("sha256"):
        return "checksum differs from the one recorded when committed (corrupt, or another file moved here)"
    return None


def read_json(path: str | os.PathLike, *, missing: str = "missing") -> Any:
    """Parse the JSON file ``path``; DataError naming the file when it is ``missing`` or corrupt."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(path, missing) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(path, f"corrupt JSON ({exc})") from None


def check_format(meta: dict, where: str | os.PathLike, fmt: str, versions: Iterable[int], what: str) -> None:
    """DataError unless ``meta`` declares format ``fmt`` in one of the readable ``versions``."""
    versions = tuple(versions)
    if meta.get("format") != fmt:
        raise DataError(where, f"not an aemg {what} (format {meta.get('format')!r})")
    if meta.get("version") not in versions:
        raise DataError(where, f"{what} format version {meta.get('version')} is not supported "
                               f"(this aemg reads versions {', '.join(map(str, versions))})")


def figure_png(fig, *, dpi: int = 110, **savefig_kw) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, **savefig_kw)
    finally:
        plt.close(fig)
    return buf.getvalue()


def save_figure(fig, path: str | os.PathLike, **kw) -> Path:
    """Write a matplotlib figure as PNG to ``path`` atomically (``kw`` as :func:`figure_png`)."""
    path = Path(path)
    atomic_write(path, figure_png(fig, **kw))
    return path
