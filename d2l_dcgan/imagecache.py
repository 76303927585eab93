"""Decode an image folder once per machine, on every core: worker processes write the decoded
uint8 images straight into a cache file, which later runs map read-only, so several runs share
one copy of the pixels through the page cache.

A cache entry is `CACHE/decoded/images-KEY.npy` (the pixels) and `images-KEY.json` (labels,
classes, files, skipped images, a CRC-32 of the pixels), the JSON written last: it is the
commit point. KEY is a digest of everything that decides the pixels: each file's path under
the folder, size and modification time, the image size, the decoder, the bad-image settings and
FORMAT. Entries are built under a lock per key and replace the folder's older entries (same
image size and settings)."""
import glob
import hashlib
import json
import mmap
import multiprocessing
import os
import sys
import warnings
import zlib
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as onp

from .errors import DCGANError, one_line
from .fileio import FileLock, atomic_write, fsync_path, remove_path

FORMAT = 1  # the layout of an entry; a change makes every older entry a miss
CHUNK = 64  # images a worker decodes per task


def cache_key(stats, labels, size, decoder, settings):
    """The digest of what decides the decoded pixels of the files of `stats` (data.file_stats)
    with their `labels`."""
    digest = hashlib.sha256(json.dumps([FORMAT, size, decoder, settings]).encode())
    for (rel, file_size, mtime_ns), label in zip(stats, labels):
        digest.update(f'{rel}\0{label}\0{file_size}\0{mtime_ns}\0'.encode(
            errors='surrogateescape'))
    return digest.hexdigest()[:32]


def _crc32(images):
    crc = 0
    flat = images.reshape(-1)
    for start in range(0, flat.size, 1 << 26):
        crc = zlib.crc32(flat[start:start + (1 << 26)], crc)
    return crc


# ------------------------------------------------------------------ decoding on every core

_WORK = {}  # what forked workers inherit: the decode function, the paths, the output array


def _decode_chunk(start):
    """Decode images start..start+CHUNK into the shared output; [(index, error)] of bad ones."""
    read, paths, out = _WORK['read'], _WORK['paths'], _WORK['out']
    bad = []
    for i in range(start, min(start + CHUNK, len(paths))):
        result = read(paths[i])
        if isinstance(result, Exception):
            bad.append((i, result))
        else:
            out[i] = result
    return bad


def decode_all(read, paths, out, workers, stop_at_first_bad=True, progress=None):
    """read(path) -> HWC uint8 array or an exception, for every path, into `out` (a shared
    mapping when workers > 1: forked workers write into it). Returns [(index, exception)] of
    the bad ones, in order; with `stop_at_first_bad`, only the first."""
    _WORK.update(read=read, paths=paths, out=out)
    starts = range(0, len(paths), CHUNK)
    try:
        if workers <= 1 or len(starts) <= 1:
            return _collect(map(_decode_chunk, starts), stop_at_first_bad, progress)
        return _in_processes(starts, workers, stop_at_first_bad, progress)
    finally:
        _WORK.clear()


def _in_processes(starts, workers, stop_at_first_bad, progress):
    # a pool that notices a worker's death (killed, out of memory), where Pool would hang
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context('fork'))
    futures = []
    try:
        with warnings.catch_warnings():  # Python 3.12+ warns of fork with threads; MXNet's
            warnings.simplefilter('ignore', DeprecationWarning)  # engine restarts in the child
            futures += [pool.submit(_decode_chunk, start) for start in starts]
        return _collect((f.result() for f in futures), stop_at_first_bad, progress)
    except BrokenProcessPool as e:
        raise DCGANError('a worker process decoding the images died (out of memory?); '
                         'try again, or read with fewer workers') from e
    finally:
        for f in futures:  # after the first bad image, the chunks not begun are not needed
            f.cancel()
        pool.shutdown(wait=True)


def _collect(results, stop_at_first_bad, progress):
    bad = []
    for chunk_bad in results:
        bad.extend(chunk_bad)
        if progress is not None:
            progress.update(CHUNK)
        if bad and stop_at_first_bad:
            return bad[:1]
    return bad


def shared_array(shape):
    """A uint8 array in anonymous shared memory, which forked workers write into."""
    size = int(onp.prod(shape))
    return onp.frombuffer(mmap.mmap(-1, max(size, 1)), dtype=onp.uint8, count=size).reshape(shape)


def progress_bar(total, what):
    """A tqdm bar on stderr if it is a terminal and the work takes over a second, else None."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=what, unit='images', delay=1.0, leave=False)


# ------------------------------------------------------------------------------ the cache

class ImageCache:
    """The entries of one cache folder (`CACHE/decoded`)."""

    def __init__(self, folder):
        self.folder = folder

    def writable(self):
        """Whether entries can be added: the folder exists or can be made, and takes files."""
        try:
            os.makedirs(self.folder, exist_ok=True)
        except OSError:
            return False
        return os.access(self.folder, os.W_OK | os.X_OK)

    def paths(self, key):
        base = os.path.join(self.folder, f'images-{key}')
        return base + '.npy', base + '.json'

    def load(self, key):
        """(images memmap read-only, metadata) of the entry `key`, or None if there is none.
        A damaged entry is said in one line and removed, never returned."""
        npy, meta_path = self.paths(key)
        try:
            with open(meta_path) as f:
                meta = json.load(f)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, ValueError) as e:
            return self._damaged(key, f'its index {meta_path} is unreadable ({type(e).__name__})')
        try:
            images = onp.load(npy, mmap_mode='r')
        except (OSError, ValueError) as e:
            return self._damaged(key, f'{npy} is unreadable or truncated ({one_line(e)})')
        if images.shape != tuple(meta['shape']) or _crc32(images) != meta['crc32']:
            return self._damaged(key, f'{npy} does not hold the pixels its index describes')
        return images, meta

    def _damaged(self, key, why):
        print(f'decoded-image cache: {why}; decoding the images again', file=sys.stderr)
        self.remove(key)
        return None

    def remove(self, key):
        """Remove the entry `key`, if it is there."""
        for path in self.paths(key):
            try:
                os.remove(path)
            except OSError:
                pass

    def create(self, key, shape):
        """A writable memmap for a new entry, under a temporary name; with the entry's lock
        held, so the temporary files of a killed run that built it are removed first."""
        os.makedirs(self.folder, exist_ok=True)
        for leftover in glob.glob(os.path.join(glob.escape(self.folder), f'images-{key}*.tmp-*')):
            remove_path(leftover)
        tmp = self.paths(key)[0] + f'.tmp-{os.getpid()}'
        return onp.lib.format.open_memmap(tmp, mode='w+', dtype=onp.uint8, shape=shape)

    def commit(self, key, images, meta):
        """Flush the new entry's pixels, rename them into place, then write its index (the
        commit point); remove the older entries of the same folder and image size. Returns the
        entry as load() does."""
        npy, meta_path = self.paths(key)
        images.flush()
        fsync_path(images.filename)
        os.replace(images.filename, npy)
        meta = {**meta, 'shape': list(images.shape), 'crc32': _crc32(images)}

        def write(tmp):
            with open(tmp, 'w') as f:
                json.dump(meta, f)
        atomic_write(meta_path, write)
        self._remove_older(key, meta)
        return onp.load(npy, mmap_mode='r'), meta

    def _remove_older(self, key, meta):
        for name in os.listdir(self.folder):
            if not (name.startswith('images-') and name.endswith('.json')) or key in name:
                continue
            try:
                with open(os.path.join(self.folder, name)) as f:
                    other = json.load(f)
            except (OSError, ValueError):
                continue
            if all(other.get(k) == meta[k] for k in ('root', 'size', 'settings')):
                self.remove(name[len('images-'):-len('.json')])

    def lock(self, key, root):
        """Hold the lock of entry `key`; a run that waits for it says so on one line."""
        os.makedirs(self.folder, exist_ok=True)
        return FileLock(os.path.join(self.folder, f'images-{key}.lock')).held(
            f'decoding {root} into {self.folder}')
