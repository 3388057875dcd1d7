"""Files and the machine: atomic writes, downloads, sha1, MXNet's folders, the CPU.

Every file d2lnets writes goes through :func:`atomic_write`: a temporary file
beside the target, renamed over it only when complete. The temporary name
carries the writer's process id (``.NAME.<pid>.<random>.tmp``), so the
temporaries of a process that died (SIGKILL, power loss) are recognised and
removed the next time anything is written into that folder.

:data:`WRITERS` names every function here that writes, truncates, replaces or
deletes a file; each refuses a symbolic link, a FIFO or a device where it
writes (tests/test_io_symlinks.py tries each one).

This module imports neither MXNet nor numpy: the deploy path, the runtime
settings and the CLI's start use it.
"""
import errno
import hashlib
import http.client
import itertools
import json
import os
import platform
import re
import shutil
import stat
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Set, Union

from .types import PathLike

__all__ = ['atomic_write', 'replace_all', 'write_text', 'write_json', 'read_json', 'parse_json',
           'remove_stale_temporaries', 'create_new', 'open_regular', 'check_own', 'remove_own', 'OWN_KINDS',
           'check_encodable',
           'read_bounded', 'WRITERS',
           'disk_full', 'sha1sum', 'download', 'mxnet_home', 'gluon_repo', 'usable_cores', 'cpu_model', 'cpu_flags',
           'DiskFull', 'DamagedFile']


# MXNet's own default repository (gluon/utils.py); $MXNET_GLUON_REPO names a mirror.
DEFAULT_REPO = 'https://apache-mxnet.s3-accelerate.dualstack.amazonaws.com/'
# A download slower than this on average is given up once past its grace period.
MIN_RATE = 20_000           # bytes per second
GRACE_SECONDS = 120.0
CHUNK = 1 << 16
# Every download ends: GluonCV's largest file (VGG-19 with batch norm, 0.6 GB)
# takes 10 minutes at 1 MB/s; a server may send no more than this.
DOWNLOAD_DEADLINE = 3600.0  # seconds
MAX_DOWNLOAD_BYTES = 4 << 30
# The JSON files d2lnets reads are a few KiB (a checkpoint's history of 10,000 epochs about 1 MiB)
# and nest a few levels: anything beyond these is damaged, and is refused before it is parsed.
MAX_JSON_BYTES = 16 << 20
MAX_JSON_DEPTH = 32

# .NAME.<pid>.<8 hex>.tmp|.part, possibly with more suffixes (a zip fetched for a .tmp)
_TEMP = re.compile(r'^\..+\.(\d+)\.[0-9a-f]{8}\.(tmp|part)(\..+)?$')


class DamagedFile(ValueError):
    """A file d2lnets reads is damaged (not JSON, too large, too deeply nested, not text, not a file)."""


class DiskFull(OSError):
    """The disk filled up while writing; the previous file is kept."""

    def __init__(self, message: str):
        super().__init__(message)
        self.errno = errno.ENOSPC


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:      # another user's process
        return True
    return True


def _not_made_here(info: os.stat_result) -> Optional[str]:
    # Why a file is not one d2lnets made (None: it may be): what d2lnets makes is a regular
    # file (or a staging folder) of this user with one name; a link, a FIFO, a hard link of
    # another file or another user's file is someone else's.
    if stat.S_ISLNK(info.st_mode):
        return 'a symbolic link'
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
        return 'not a regular file'
    if stat.S_ISREG(info.st_mode) and info.st_nlink != 1:
        return 'a hard link (%d names for one file)' % info.st_nlink
    if info.st_uid != os.geteuid():
        return 'owned by another user (uid %d)' % info.st_uid
    return None


def check_encodable(path: PathLike, what: str = 'the path') -> str:
    """``path`` as a string if it is text in the file system's encoding with no NUL; ``ValueError`` in
    one line otherwise. Under a UTF-8 locale a name of bytes that are not UTF-8 reaches Python as
    surrogate escapes: such a name could be created but not printed, logged or written into a file."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    encoding = sys.getfilesystemencoding()
    shown = ascii(text.encode(encoding, 'surrogateescape'))[2:-1] if '\0' not in text else ascii(text)[1:-1]
    if '\0' in text:
        raise ValueError('%s %s holds a NUL character; give a path without one' % (what, shown))
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        raise ValueError('%s %s is not %s text; give a name in %s' % (what, shown, encoding, encoding)) from None
    return text


# What remove_own deletes: a regular file; a folder with nothing in it; or a tree, a regular file or a
# folder with everything in it (what a run or an export made: its run folder, its staging folder).
OWN_KINDS = ('file', 'empty folder', 'tree')


def check_own(path: PathLike, what: str = 'file') -> None:
    """``ValueError`` in one line unless ``path`` is a ``what`` (one of :data:`OWN_KINDS`) d2lnets may
    have made: a regular file with one name (not a hard link of another file), or for ``'empty folder'``
    and ``'tree'`` a folder, owned by this user; never a symbolic link (not even one to a folder), a
    FIFO or a device. What d2lnets deletes passes this first."""
    if what not in OWN_KINDS:
        raise ValueError('`what` is one of %s, got %r' % (', '.join(OWN_KINDS), what))
    info = os.lstat(path)
    why = _not_made_here(info)
    if why is None and stat.S_ISDIR(info.st_mode) and what == 'file':
        why = 'a folder'
    elif why is None and stat.S_ISREG(info.st_mode) and what == 'empty folder':
        why = 'a file, not a folder'
    if why is not None:
        kinds = 'regular files' if what == 'file' else 'files and folders'
        raise ValueError('%s is %s; d2lnets deletes only %s of its own: remove it yourself, or '
                         'choose another folder' % (path, why, kinds))


def remove_own(path: PathLike, what: str = 'file') -> None:
    """Delete ``path`` if :func:`check_own` finds it a ``what`` of d2lnets (``ValueError`` otherwise,
    and it stays). An ``'empty folder'`` that is not empty stays too (``OSError``). A ``'tree'`` folder
    goes with everything in it, by ``shutil.rmtree``'s walk over open folders, which follows no link:
    a link inside is removed, what it points to stays."""
    check_own(path, what)
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        os.unlink(path)
    elif what == 'empty folder':
        os.rmdir(path)
    else:
        shutil.rmtree(path)


def remove_stale_temporaries(folder: PathLike) -> int:
    """Remove the temporaries (``.*.<pid>.*.tmp`` / ``.part``) that processes
    no longer running left in ``folder``; return how many. Only what d2lnets
    makes is removed: a regular file or a staging folder of this user, never a
    symbolic link, a FIFO, a hard link of another file or another user's file."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        match = _TEMP.match(entry.name)
        if match and int(match.group(1)) != os.getpid() and not _alive(int(match.group(1))):
            try:
                info = entry.stat(follow_symlinks=False)
                if _not_made_here(info) is not None:
                    continue
                if stat.S_ISDIR(info.st_mode):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed += 1
            except OSError:
                pass
    return removed


def temporary_name(path: PathLike, suffix: str = '.tmp') -> str:
    """A fresh temporary path beside ``path`` that :func:`remove_stale_temporaries`
    recognises once its writer is gone. Nothing is created."""
    path = Path(path)
    return str(path.parent / ('.%s.%d.%s%s' % (path.name, os.getpid(), os.urandom(4).hex(), suffix)))


def _disk_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(str(folder)).free < (1 << 20)
    except OSError:
        return False


def disk_full(folder: PathLike, err: BaseException, what: PathLike) -> Optional['DiskFull']:
    """A :class:`DiskFull` for writing ``what`` if ``err`` (from any library)
    came from a full disk under ``folder``, else ``None``."""
    if (isinstance(err, OSError) and err.errno == errno.ENOSPC) or _disk_full(Path(folder)):
        return DiskFull('no space left on the device to write %s; free some space and run again '
                        '(nothing was replaced)' % what)
    return None


def _not_ours(path: PathLike, what: str) -> ValueError:
    return ValueError('%s is %s; d2lnets writes only regular files of its own there: remove it, or choose '
                      'another folder' % (path, what))


def check_replaceable(path: PathLike) -> None:
    """``ValueError`` unless ``path`` is missing or a regular file: never a symbolic link (whose
    target may lie outside the folder), a FIFO, a device, a socket or a folder."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise _not_ours(path, 'a symbolic link')
    if not stat.S_ISREG(mode):
        raise _not_ours(path, 'not a regular file')


def _what_is(path: PathLike) -> str:
    # What is found at ``path``, for a message: a symbolic link, not a regular file, or a file.
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return 'gone meanwhile'
    return 'a symbolic link' if stat.S_ISLNK(mode) else 'not a regular file' if not stat.S_ISREG(mode) \
        else 'a file that exists already'


def create_new(path: PathLike) -> int:
    """A write-only descriptor of the new regular file ``path`` (mode 0o600), created here.

    ``O_CREAT | O_EXCL`` refuses anything already at ``path``, and a symbolic
    link is never followed, even a dangling one: ``ValueError`` in one line,
    and nothing is written. Temporaries are made so, a name someone planted
    beside the target (a link, a FIFO) is refused, not written through.
    """
    check_encodable(path)
    try:
        return os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise _not_ours(path, _what_is(path)) from None


def _open_readable(path: PathLike) -> int:
    # A read-only descriptor of the regular file at ``path`` (a symbolic link is followed: reading
    # writes nothing); O_NONBLOCK, so opening a FIFO does not wait for a writer, then refused.
    try:
        fd = os.open(str(path), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        raise OSError(err.errno, 'cannot read %s: %s' % (path, err.strerror)) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ValueError('%s is not a regular file' % path)
    return fd


def open_regular(path: PathLike, write: bool = True) -> int:
    """A read-write descriptor of the regular file ``path``, created (0o644) if missing.

    Never through a symbolic link (``O_NOFOLLOW``), never onto a FIFO, a
    device or a socket, never a file with other names (a hard link, which
    could be anyone's file): ``ValueError`` in one line for those, and
    nothing is written. ``write=False``: a read-only descriptor of an existing
    file; a symbolic link is followed (reading writes nothing), but what it
    reaches must be a regular file (a FIFO would block, a device never end).
    """
    if not write:
        return _open_readable(path)
    check_encodable(path)
    check_replaceable(path)
    try:
        fd = os.open(str(path), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as err:
        if err.errno == errno.ELOOP:        # made a symbolic link since the lstat
            raise _not_ours(path, 'a symbolic link') from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise _not_ours(path, 'not a regular file' if not stat.S_ISREG(info.st_mode)
                        else 'a hard link (%d names for one file)' % info.st_nlink)
    return fd


# A JSON string, or what is left of an unclosed one: matched in one pass whatever the text
# (an optional closing quote, so no match is retried from the next quote).
_JSON_STRING = re.compile(r'"(?:[^"\\]+|\\.)*"?', re.S)
_JSON_BRACKETS = re.compile(r'[\[\]{}]')
_JSON_STEP = {'[': 1, '{': 1, ']': -1, '}': -1}


def _json_depth(text: str) -> int:
    # The deepest nesting of [ and { outside strings: counted before json.loads, whose
    # recursion would meet a file of 100,000 "[" as a RecursionError.
    brackets = _JSON_BRACKETS.findall(_JSON_STRING.sub('', text))
    return max(itertools.accumulate(map(_JSON_STEP.__getitem__, brackets)), default=0)


def _damaged(source: str, why: str, fix: str) -> DamagedFile:
    return DamagedFile('%s is damaged (%s); %s' % (source, why, fix))


def _too_large(size: int, limit: int) -> str:
    return '%d bytes, more than the %d a file of its kind can have' % (size, limit)


def parse_json(data: Union[bytes, str], source: str, fix: str, max_bytes: int = MAX_JSON_BYTES,
               max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The value of the JSON text ``data`` (UTF-8 when bytes), at most
    ``max_bytes`` long and ``max_depth`` deep; checked before it is parsed.

    Raises
    ------
    DamagedFile
        One line: ``SOURCE is damaged (why); FIX``.
    """
    if len(data) > max_bytes:
        raise _damaged(source, _too_large(len(data), max_bytes), fix)
    try:
        text = data.decode('utf-8') if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise _damaged(source, 'not UTF-8 text', fix) from None
    if _json_depth(text) > max_depth:
        raise _damaged(source, 'nested more than %d levels deep' % max_depth, fix)
    try:
        return json.loads(text)
    except ValueError as err:     # JSONDecodeError, and numbers of more than 4300 digits
        raise _damaged(source, 'not JSON: %s' % str(err).splitlines()[0][:100], fix) from None


def read_bounded(path: PathLike, limit: int, what: str = 'the file', fix: str = 'remove it, or write it anew',
                 max_lines: Optional[int] = None) -> bytes:
    """The bytes of the regular file ``path`` (a symbolic link is followed: reading writes nothing), at
    most ``limit`` of them and ``max_lines`` lines: its kind and size checked by ``fstat`` before
    anything is read, and never more read than the limit (a file that grows meanwhile).

    Raises
    ------
    DamagedFile
        One line: ``WHAT PATH is damaged (not a regular file | N bytes, more than ... | N lines,
        more than ...); FIX``. A FIFO or a device is refused at once.
    OSError
        ``path`` cannot be opened (missing, no permission).
    """
    source = '%s %s' % (what, path)
    try:
        fd = _open_readable(path)
    except ValueError:
        raise _damaged(source, 'not a regular file', fix) from None
    with open(fd, 'rb') as f:
        size = os.fstat(fd).st_size
        if size > limit:
            raise _damaged(source, _too_large(size, limit), fix)
        data = f.read(limit + 1)
    if len(data) > limit:
        raise _damaged(source, _too_large(len(data), limit), fix)
    lines = data.count(b'\n') + (not data.endswith(b'\n') and bool(data))
    if max_lines is not None and lines > max_lines:
        raise _damaged(source, '%d lines, more than the %d a file of its kind can have' % (lines, max_lines), fix)
    return data


def read_json(path: PathLike, what: str, fix: str = 'remove it, or write it anew',
              max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The value of the JSON file ``path`` (``what``: the kind of file, for messages), read
    by :func:`read_bounded` (a regular file, its size checked before anything is read), and
    parsed by :func:`parse_json`.

    Raises
    ------
    DamagedFile
        One line naming ``what`` and ``path`` as damaged, and ``fix``: what to do.
    OSError
        ``path`` cannot be opened (missing, no permission).
    """
    data = read_bounded(path, max_bytes, what, fix)
    return parse_json(data, '%s %s' % (what, path), fix, max_bytes, max_depth)


def atomic_write(path: PathLike, write: Callable[[str], Any], suffix: str = '.tmp') -> Path:
    """Call ``write(tmp_name)`` to write a temporary file beside ``path`` (made
    empty by :func:`create_new` first), then rename it to ``path`` with the mode
    ``open()`` would give.

    On any error (or Ctrl-C) the temporary is removed and ``path`` keeps its
    old content. Missing folders are created. A full disk raises
    :class:`DiskFull` (an ``OSError``) with one clear line, whatever library
    ``write`` used. ``path`` must be missing or a regular file
    (:func:`check_replaceable`).
    """
    path = Path(check_encodable(path))
    check_replaceable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    tmp = temporary_name(path, suffix)
    made = False
    try:
        # Made here, before ``write`` opens it by name: a link or a FIFO planted under the name is refused.
        os.close(create_new(tmp))
        made = True
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except Exception as err:
        full = disk_full(path.parent, err, path)
        if full is not None:
            raise full from None
        raise
    finally:
        if made and os.path.lexists(tmp):
            os.unlink(tmp)
    return path


def replace_all(staged: Sequence[PathLike], targets: Sequence[PathLike]) -> None:
    """Move each staged file onto its target through :func:`atomic_write`, all or none: on any
    error the targets already replaced get their old content back. Every target must be
    missing or a regular file (:func:`check_replaceable`), checked before anything moves."""
    for target in targets:
        check_replaceable(target)
    done, backups = [], []
    try:
        for src, dst in zip(staged, targets):
            backup = None
            if os.path.lexists(dst):
                backup = temporary_name(dst, '.old')
                os.link(dst, backup, follow_symlinks=False)     # the old content, once dst is replaced
                backups.append(backup)
            atomic_write(dst, lambda tmp, src=src: os.replace(src, tmp))
            done.append((dst, backup))
    except BaseException:
        for dst, backup in reversed(done):
            if backup is not None:
                os.replace(backup, dst)
            else:
                os.unlink(dst)
        raise
    finally:
        for backup in backups:
            if os.path.lexists(backup):
                os.unlink(backup)


def write_text(path: PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_json(path: PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return write_text(path, json.dumps(obj, indent=2) + '\n')


def sha1sum(path: PathLike) -> str:
    """The sha1 of the regular file ``path``, hex (a FIFO or a device: ``ValueError`` at once)."""
    digest = hashlib.sha1()
    with open(_open_readable(path), 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def _progress_bar(total: Optional[int], desc: str, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit='B', unit_scale=True, unit_divisor=1024,
                disable=not enabled, leave=False, file=sys.stderr)


def _stream(url: str, tmp: str, progress: bool, timeout: float, deadline: float, desc: str,
            max_bytes: int) -> None:
    start = time.monotonic()
    with urllib.request.urlopen(url, timeout=timeout) as resp, open(open_regular(tmp), 'wb') as out:
        length = resp.headers.get('Content-Length')
        total = int(length) if length and length.isascii() and length.isdigit() else None
        if total is not None and total > max_bytes:
            raise OSError(errno.EFBIG, 'the server announces %d bytes, more than the %d accepted' % (total, max_bytes))
        done = 0
        with _progress_bar(total, desc, progress) as bar:
            # read1: at most one read of the socket, so a trickling server is
            # checked against the deadline after every few bytes.
            for chunk in iter(lambda: resp.read1(CHUNK), b''):
                done += len(chunk)
                if done > max_bytes:
                    raise OSError(errno.EFBIG, 'the server sent more than the %d bytes accepted' % max_bytes)
                out.write(chunk)
                bar.update(len(chunk))
                elapsed = time.monotonic() - start
                if elapsed > deadline:
                    raise OSError(errno.ETIMEDOUT, 'gave up after %.0f s with %d of %s bytes (the deadline for '
                                  'the whole download)' % (elapsed, done, total or 'unknown'))
                if elapsed > GRACE_SECONDS and done / elapsed < MIN_RATE:
                    raise OSError(errno.ETIMEDOUT, 'the server sends %.0f bytes/s, too slow to finish; gave up '
                                  'after %.0f s' % (done / elapsed, elapsed))
        if total is not None and done != total:
            raise OSError('the connection closed after %d of %d bytes' % (done, total))


def download(url: str, dest: PathLike, sha1: Optional[str] = None, progress: Optional[bool] = None,
             timeout: float = 30.0, deadline: float = DOWNLOAD_DEADLINE, desc: Optional[str] = None,
             max_bytes: int = MAX_DOWNLOAD_BYTES) -> Path:
    """Download ``url`` to ``dest`` through ``.NAME.<pid>.<random>.part`` beside it.

    ``dest`` appears only complete, as long as announced and (when ``sha1`` is
    given) with that sha1. ``timeout`` bounds each wait for the server;
    ``deadline`` (seconds) the whole download; ``max_bytes`` its size, checked
    against the announced length before anything is written and while it comes;
    ``desc`` labels the progress bar (default: ``dest``'s name); a server slower than
    :data:`MIN_RATE` on average after :data:`GRACE_SECONDS` is given up too.

    Raises
    ------
    OSError
        Saying what failed (refused, HTTP status, dropped, too slow, wrong
        sha1); nothing is left behind.
    """
    dest = Path(dest)
    progress = sys.stderr.isatty() if progress is None else progress

    def fetch(tmp: str) -> None:
        _stream(url, tmp, progress, timeout, deadline, desc or dest.name, max_bytes)
        if sha1 is not None:
            actual = sha1sum(tmp)
            if actual != sha1:
                raise OSError('the file has sha1 %s, expected %s (a damaged or different file)' % (actual, sha1))

    try:
        return atomic_write(dest, fetch, suffix='.part')
    except DiskFull:
        raise
    except (OSError, http.client.HTTPException) as err:
        # URLError, timeouts and dropped connections (IncompleteRead is an HTTPException).
        why = err if isinstance(err, urllib.error.HTTPError) else getattr(err, 'reason', None) or err
        if isinstance(err, urllib.error.HTTPError) and 300 <= err.code < 400:
            # urllib's own text for a loop spans three lines
            why = 'HTTP %d: the server redirects in a loop or too often (more than %d times)' % (
                err.code, urllib.request.HTTPRedirectHandler.max_redirections)
        raise OSError('could not download %s: %s' % (url, ' '.join(str(why).split()))) from None


# Every function above that writes, truncates, replaces or deletes a file (tests/test_io_symlinks.py).
WRITERS = (atomic_write, replace_all, write_text, write_json, open_regular, create_new, remove_stale_temporaries,
           remove_own, download)


def mxnet_home() -> Path:
    """``$MXNET_HOME``, default ``~/.mxnet``, as MXNet and GluonCV read it."""
    return Path(os.environ.get('MXNET_HOME') or os.path.join(os.path.expanduser('~'), '.mxnet')).expanduser()


def gluon_repo(default: str = DEFAULT_REPO) -> str:
    """``$MXNET_GLUON_REPO`` (a mirror), else ``default``; always ending in ``/``."""
    url = os.environ.get('MXNET_GLUON_REPO') or default
    return url if url.endswith('/') else url + '/'


def _cpuinfo_field(name: str) -> Optional[str]:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith(name) and ':' in line and line.split(':', 1)[0].strip() == name:
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags() -> Set[str]:
    """The CPU's feature flags (from /proc/cpuinfo; empty where there is none)."""
    return set((_cpuinfo_field('flags') or '').split())


def cpu_model() -> str:
    """The CPU's model name, or the machine type where /proc/cpuinfo does not say."""
    return _cpuinfo_field('model name') or platform.processor() or platform.machine()


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, else all)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1)
