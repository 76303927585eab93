"""Atomic file writes (a reader, or a crash, never sees half a file), file digests, and locks
that a crash cannot leave behind."""
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys

from .errors import DCGANError


def fsync_path(path):
    """Flush a file's or a folder's data (a folder's: its entries) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temporary(path):
    """The name `path` is written under before it is renamed into place."""
    return f'{path}.tmp-{os.getpid()}'


# temporary()'s names, and those of checkpoints written by versions before it
TEMPORARY = re.compile(r'(.+\.tmp-\d+|\.tmp-.+)$')


def is_temporary(name):
    """True if the file or folder `name` is one a killed writer may have left (temporary)."""
    return bool(TEMPORARY.match(name))


def atomic_write(path, write):
    """Call `write(tmp_path)`, fsync, then rename over `path`; on failure `path` is untouched."""
    tmp = temporary(path)
    try:
        write(tmp)
        fsync_path(tmp)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise DCGANError(f'could not write {path}: {e.strerror or e}; '
                         f'the previous version, if any, is kept') from e


def write_json(path, obj):
    def write(tmp):
        with open(tmp, 'w') as f:
            json.dump(obj, f, indent=2)
    atomic_write(path, write)


def save_params(net, path):
    atomic_write(path, net.save_parameters)


def file_digest(path, algorithm):
    """Hex digest of a file's bytes, read 1 MiB at a time."""
    h = hashlib.new(algorithm)
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def remove_path(path):
    """Delete a file or a folder, if it is there."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def can_write(folder):
    """Whether files can be made in `folder`: it exists or can be made, and takes them."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)


def read_text(path):
    """A small text file's stripped content, or None if it cannot be read."""
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


class FileLock:
    """An exclusive flock on the file `path`, which names its holder's PID. The kernel releases
    it when the process dies, so a crash leaves no stale lock."""

    def __init__(self, path):
        self.path, self.fd = path, None

    def acquire(self, blocking=True):
        """Take the lock, waiting for its holder if `blocking`; False if held and not blocking."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise DCGANError(f'cannot create the lock file {self.path}: {e.strerror or e}') from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:  # e.g. Ctrl-C while waiting
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return True

    def holder(self):
        """The PID the lock's holder wrote into it, or '?'."""
        try:
            with open(self.path) as f:
                return f.read(64).strip() or '?'
        except OSError:
            return '?'

    def release(self):
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    @contextlib.contextmanager
    def held(self, doing):
        """Hold the lock; if another process holds it, say so on one line of stderr ('waiting
        for another run (pid N) that is `doing` ...') and wait for it."""
        if not self.acquire(blocking=False):
            print(f'waiting for another run (pid {self.holder()}) that is {doing} ...',
                  file=sys.stderr, flush=True)
            self.acquire()
        try:
            yield self
        finally:
            self.release()
