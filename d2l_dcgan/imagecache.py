"""The decoded-image cache: an image folder's decoded uint8 images in a file that later runs map
read-only, so several runs share one copy of the pixels through the page cache
(d2l_dcgan.decode fills new entries, on every core).

A cache entry is `CACHE/decoded/images-KEY.npy` (the pixels) and `images-KEY.json` (labels,
classes, files, skipped images, a CRC-32 of the pixels), the JSON written last: it is the
commit point. KEY is a digest of everything that decides the pixels: each file's path under
the folder, size and modification time, the image size, the decoder, the bad-image settings and
FORMAT. Entries are built under a lock per key and replace the folder's older entries (same
image size and settings)."""
import glob
import hashlib
import json
import os
import sys
import zlib

import numpy as onp

from .errors import one_line
from .fileio import FileLock, atomic_write, can_write, fsync_path, remove_path

FORMAT = 1  # the layout of an entry; a change makes every older entry a miss


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


# ------------------------------------------------------------------------------ the cache

class ImageCache:
    """The entries of one cache folder (`CACHE/decoded`)."""

    def __init__(self, folder):
        self.folder = folder

    def writable(self):
        """Whether entries can be added: the folder exists or can be made, and takes files."""
        return can_write(self.folder)

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
