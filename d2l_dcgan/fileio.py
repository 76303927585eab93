"""Atomic file writes (a reader, or a crash, never sees half a file) and file digests."""
import hashlib
import os

from .errors import DCGANError


def fsync_path(path):
    """Flush a file's or a folder's data (a folder's: its entries) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path, write):
    """Call `write(tmp_path)`, fsync, then rename over `path`; on failure `path` is untouched."""
    tmp = f'{path}.tmp-{os.getpid()}'
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


def file_digest(path, algorithm):
    """Hex digest of a file's bytes, read 1 MiB at a time."""
    h = hashlib.new(algorithm)
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()
