"""`ftcot data fetch`: every data file of ftcot.data.DATA_FILES downloaded (or copied from a mirror), verified
(sha256, or git blob id) before it is moved into place; the recorded teacher's files parsed from Kojima et al.'s
logs where no source has them."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from ftcot.data import DATA_FILES, DATA_FILES_BY_PATH, KOJIMA_LOG_NAMES, DataFile, is_verified, mismatch
from ftcot.errors import UserError
from ftcot.teachers.kojima import derive_teacher_file


class _TransientFetchError(Exception):
    pass


@retry(
    retry=retry_if_exception_type(_TransientFetchError),
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=0.2, max=2),
    reraise=True,
)
def _download(url: str, dest, client: httpx.Client) -> None:
    dest.seek(0)
    dest.truncate()
    try:
        with client.stream("GET", url) as response:
            if response.status_code >= 500 or response.status_code == 429:
                raise _TransientFetchError(f"HTTP {response.status_code}")
            if response.status_code == 404:
                raise FileNotFoundError(url)
            if response.status_code != 200:
                raise UserError(f"cannot fetch {url}: HTTP {response.status_code}")
            for chunk in response.iter_bytes():
                dest.write(chunk)
    except httpx.TransportError as exc:  # dropped connection, incomplete body, timeout
        raise _TransientFetchError(f"{type(exc).__name__}: {exc}") from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:  # a redirect loop or to another scheme, a bad URL
        raise UserError(f"cannot fetch {url}: {exc}") from None


def _source_of(file: DataFile, source: str | None) -> str | None:
    """A local path or URL for the file: under the given mirror (folder or base URL), else upstream."""
    if source is None:
        return file.url
    if source.startswith(("http://", "https://")):
        return f"{source.rstrip('/')}/{file.path}"
    return str(Path(source).expanduser() / file.path)


def check_source(source: str | None) -> None:
    """A mirror is an http(s) base URL or a local folder that exists."""
    if source is None:
        return
    if source.startswith(("http://", "https://")):
        try:
            host = httpx.URL(source).host
        except httpx.InvalidURL as exc:
            raise UserError(f"--source {source!r}: not a valid URL ({exc})") from None
        if not host:
            raise UserError(f"--source {source!r}: a URL needs a host")
        return
    if "://" in source:
        raise UserError(f"--source {source.split('://')[0]}://...: only http(s) URLs and local folders are supported")
    if not Path(source).expanduser().is_dir():
        raise UserError(f"--source {source}: no such folder")


def fetch_file(file: DataFile, root: Path, source: str | None, client: httpx.Client) -> str:
    """Fetch one file into root, verified and atomically renamed into place. Returns what was done."""
    if is_verified(file, root):
        return "verified"
    origin = _source_of(file, source)
    if (
        file.derived_from
        and (origin is None or not Path(origin).is_file())
        and is_verified(DATA_FILES_BY_PATH[file.derived_from], root)
    ):
        return _derive(file, root)
    if origin is None:
        return f"skipped: no public source ({file.origin}); pass --source"
    target = root / file.path
    with _beside(target) as staged:
        with open(staged, "w+b") as tmp:
            if origin.startswith(("http://", "https://")):
                try:
                    _download(origin, tmp, client)
                except _TransientFetchError as exc:
                    raise UserError(f"cannot fetch {origin}: {exc} (after 3 attempts)") from None
                except FileNotFoundError:
                    return f"missing at source: {origin}"
            else:
                if not Path(origin).is_file():
                    return f"missing at source: {origin}"
                # O_NOFOLLOW: what is read is the path checked, even if a link is swapped in meanwhile
                with os.fdopen(os.open(_inside(origin, source), os.O_RDONLY | os.O_NOFOLLOW), "rb") as src:
                    shutil.copyfileobj(src, tmp)
        _place(file, staged, target, f"from {origin}")
    return "fetched"


def _inside(origin: str, source: str) -> Path:
    """A local source's file, refused when it is a link that leads out of the source folder."""
    real, folder = Path(origin).resolve(), Path(source).expanduser().resolve()
    if not real.is_relative_to(folder):
        raise UserError(f"{origin} is a link to {real}, outside the source folder {folder}: not copied")
    return real


@contextlib.contextmanager
def _beside(target: Path):
    """A temp file beside target, for a rename to move into place; gone whatever happens."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def _place(file: DataFile, staged: Path, target: Path, whence: str) -> None:
    """Move a staged file into place, only once it matches the digests published for it."""
    if why := mismatch(file, staged):
        raise UserError(f"checksum mismatch for {file.path} {whence}: {why}")
    os.replace(staged, target)


def _derive(file: DataFile, root: Path) -> str:
    """A teacher file parsed from its log, as the shared data's README lays down; its checksum is the
    published one, or nothing is left behind."""
    task = next(t for t, name in KOJIMA_LOG_NAMES.items() if file.derived_from.endswith(f"/{name}_zero_shot_cot.log"))
    target = root / file.path
    with _beside(target) as staged:
        derive_teacher_file(root / file.derived_from, task, root, staged)
        _place(file, staged, target, f"parsed from {file.derived_from}")
    return "derived"


def fetch(
    root: Path,
    source: str | None = None,
    files: tuple[DataFile, ...] = DATA_FILES,
    timeout: float = 60.0,
    progress=None,
) -> dict[str, str]:
    """Fetch every data file that is not already present and verified; a file that cannot be fetched does not
    stop the others. Returns {path: outcome}: "fetched", "derived", "verified", "missing at source: ...",
    "failed: ..." or "skipped: ..."."""
    check_source(source)
    outcomes = {}
    with httpx.Client(timeout=timeout, follow_redirects=True) as client:
        for file in files:
            try:
                outcomes[file.path] = fetch_file(file, root, source, client)
            except UserError as exc:
                outcomes[file.path] = f"failed: {exc}"
            if progress is not None:
                progress(file.path, outcomes[file.path])
    return outcomes
