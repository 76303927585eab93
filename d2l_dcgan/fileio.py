"""Atomic file writes: a reader (or a crash) never sees half a file."""
import os

from .errors import DCGANError


def atomic_write(path, write):
    """Call `write(tmp_path)`, fsync, then rename over `path`; on failure `path` is untouched."""
    tmp = f'{path}.tmp-{os.getpid()}'
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise DCGANError(f'could not write {path}: {e.strerror or e}; '
                         f'the previous version, if any, is kept') from e
