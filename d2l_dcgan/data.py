"""The Pokemon sprites (or any image folder) as the chapter's 64x64, [-1, 1] DataLoader."""
import contextlib
import functools
import glob
import hashlib
import http.client
import os
import shutil
import urllib.error
import urllib.request
import warnings
import zipfile

import numpy as onp
from d2l import mxnet as d2l
from mxnet import gluon, np

from . import decode
from .decode import MAX_IMAGE_PIXELS
from .errors import ArgumentError, DCGANError, check_positive
from .fileio import FileLock, can_write, file_digest, read_text, remove_path

POKEMON_SHA1 = 'c065c0e2593b8b161a2d7873e42418bf6a21106c'
d2l.DATA_HUB['pokemon'] = (d2l.DATA_URL + 'pokemon.zip', POKEMON_SHA1)


def default_cache_dir():
    """The data cache of this machine: $D2L_DCGAN_CACHE, else $XDG_CACHE_HOME/d2l-dcgan, else
    ~/.cache/d2l-dcgan, as an absolute path."""
    # one folder per machine, not d2l's ../data of the working directory: the notebook (run in
    # examples/) and make (run at the root) would each keep a copy
    path = os.environ.get('D2L_DCGAN_CACHE') or os.path.join(
        os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache'),
        'd2l-dcgan')
    return os.path.abspath(os.path.expanduser(path))


DEFAULT_CACHE_DIR = default_cache_dir()
IMAGE_EXTS = ('.jpg', '.jpeg', '.png')  # what ImageFolderDataset reads


def sha1_of(path):
    return file_digest(path, 'sha1')


def _cache_path(name, cache_dir):
    """Where `d2l.DATA_HUB[name]` is kept in `cache_dir`: pokemon.zip for the Pokemon."""
    return os.path.join(cache_dir, d2l.DATA_HUB[name][0].split('/')[-1])


def _verified(fname, sha1_hash):
    return os.path.exists(fname) and (sha1_hash is None or sha1_of(fname) == sha1_hash)


@contextlib.contextmanager
def _preparing(name, cache_dir, missing):
    """The cache's path of `d2l.DATA_HUB[name]`, held by this run alone: runs sharing the cache
    take turns (a lock file, `pokemon.lock` for pokemon.zip), and the temporary files of runs
    that died are removed first. A cache that cannot be written is one line naming what is
    `missing` from it."""
    fname = _cache_path(name, cache_dir)
    if not can_write(cache_dir):
        raise ArgumentError(
            'cache_dir', f'{cache_dir} holds no {missing} and cannot be written: give a cache_dir '
            f'that can be, or the extracted image folder as data_dir', also=['data_dir'])
    base = os.path.splitext(fname)[0]
    with FileLock(base + '.lock').held(f'preparing {os.path.basename(base)} in {cache_dir}'):
        # only the lock's holder writes these, so any found now belong to runs that died
        for leftover in glob.glob(glob.escape(fname) + '.part*') + glob.glob(
                glob.escape(base) + '.tmp-*'):
            remove_path(leftover)
        yield fname


def download(name, cache_dir=DEFAULT_CACHE_DIR, timeout=60):
    """Fetch `d2l.DATA_HUB[name]` into `cache_dir` and return its path.

    d2l.download checks neither the HTTP status nor the SHA-1 of a fresh download, so this
    one does both, and only renames a complete, verified file into place. Runs sharing
    `cache_dir` take turns; a verified file is only read (the cache may be read-only)."""
    fname = _cache_path(name, cache_dir)
    if _verified(fname, d2l.DATA_HUB[name][1]):
        return fname
    with _preparing(name, cache_dir, f'verified {os.path.basename(fname)}') as fname:
        return _download(d2l.DATA_HUB[name], fname, timeout)


def _download(hub_entry, fname, timeout=60):
    """download()'s work, with the cache's lock held: `fname` if it verifies, else fetched."""
    url, sha1_hash = hub_entry
    cache_dir = os.path.dirname(fname)
    if _verified(fname, sha1_hash):  # another run may have fetched it while this one waited
        return fname
    if os.path.exists(fname):
        print(f'{fname} has the wrong SHA-1; downloading it again')
    partial = f'{fname}.part-{os.getpid()}'
    print(f'Downloading {fname} from {url}...')
    sha1 = hashlib.sha1()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            status = getattr(r, 'status', None)
            if status is not None and status != 200:
                raise DCGANError(f'downloading {url} failed: HTTP status {status}')
            with open(partial, 'wb') as f:
                for chunk in iter(lambda: r.read(1 << 20), b''):
                    sha1.update(chunk)
                    f.write(chunk)
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError,
            TimeoutError, ValueError) as e:
        remove_path(partial)
        reason = getattr(e, 'reason', e)
        if isinstance(e, urllib.error.HTTPError):  # urlopen raises these before `status` is seen
            reason = f'HTTP {e.code} {e.reason}'
        raise ArgumentError(
            'cache_dir', f'could not download {url} ({reason}); without network access, put '
            f'{os.path.basename(fname)} (SHA-1 {sha1_hash}) into {cache_dir} by hand, '
            f'or give an image folder as data_dir', also=['data_dir']) from e
    except OSError as e:
        remove_path(partial)
        raise DCGANError(f'could not write {partial}: {e.strerror or e}') from e
    except BaseException:
        remove_path(partial)
        raise
    if sha1_hash is not None and sha1.hexdigest() != sha1_hash:
        remove_path(partial)
        raise DCGANError(
            f'{url} downloaded with SHA-1 {sha1.hexdigest()}, expected {sha1_hash}; '
            f'the bad file was deleted, try again')
    os.replace(partial, fname)
    return fname


def safe_extract(zip_path, dest):
    """Extract `zip_path` into `dest`, refusing any entry that would land outside it."""
    dest_real = os.path.realpath(dest)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            for info in zf.infolist():
                target = os.path.realpath(os.path.join(dest_real, info.filename))
                is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
                if (os.path.isabs(info.filename) or is_link
                        or os.path.commonpath([dest_real, target]) != dest_real):
                    raise DCGANError(
                        f'{zip_path} has an entry {info.filename!r} that would be written '
                        f'outside {dest}; refusing to extract it')
            zf.extractall(dest_real)
    except zipfile.BadZipFile as e:
        raise DCGANError(f'{zip_path} is not a valid zip file ({e})') from e


def download_extract(name, cache_dir=DEFAULT_CACHE_DIR):
    """Download and extract `d2l.DATA_HUB[name]`; return the folder it holds, like d2l's.

    A folder marked done is only read, with no lock (the cache may be read-only). Otherwise
    runs sharing the cache take turns, and a folder is replaced only by the one run that holds
    the cache and finds it not marked done; so no run reads a folder that another replaces."""
    hub_entry = d2l.DATA_HUB[name]
    fname, done = _cache_path(name, cache_dir), str(hub_entry[1])
    if _extracted(fname, done):
        return os.path.splitext(fname)[0]
    with _preparing(name, cache_dir, f'extracted {os.path.basename(fname)}') as fname:
        return _extract(_download(hub_entry, fname), done)


def _extracted(fname, done):
    """Whether `fname`'s folder beside it is there and marked `done` (the zip's SHA-1)."""
    data_dir = os.path.splitext(fname)[0]
    return os.path.isdir(data_dir) and read_text(data_dir + '.extracted') == done


def _extract(fname, done):
    """Extract `fname` beside itself unless its folder is marked `done` (the zip's SHA-1).

    It goes to a temporary folder first and is marked done last, so an interrupted extraction
    is never taken for done."""
    base_dir, data_dir = os.path.dirname(fname), os.path.splitext(fname)[0]
    marker = data_dir + '.extracted'
    if _extracted(fname, done):  # another run may have extracted it while this one waited
        return data_dir
    tmp = f'{data_dir}.tmp-{os.getpid()}'
    new, old = os.path.join(tmp, 'new'), os.path.join(tmp, 'old')
    try:
        os.makedirs(old)
        safe_extract(fname, new)
        if not os.path.isdir(os.path.join(new, os.path.basename(data_dir))):
            raise DCGANError(f'{fname} holds no folder {os.path.basename(data_dir)}/')
        remove_path(marker)  # from here the folder in place is not done, whatever happens
        for entry in os.listdir(new):
            final = os.path.join(base_dir, entry)
            if os.path.lexists(final):
                os.replace(final, os.path.join(old, entry))  # deleted with tmp
            os.replace(os.path.join(new, entry), final)
        with open(marker, 'w') as f:  # the commit point
            f.write(done)
    except OSError as e:
        raise DCGANError(f'could not extract {fname} into {base_dir}: '
                         f'{e.strerror or e}') from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return data_dir


def list_images(data_dir):
    """(path, label) pairs and class names of an ImageFolder root: `data_dir/<class>/<image>`."""
    if not os.path.exists(data_dir):
        raise DCGANError(f'data directory {data_dir} does not exist')
    if not os.path.isdir(data_dir):
        raise DCGANError(f'data directory {data_dir} is not a directory')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # it warns of every stray file; we only need the images
        dataset = gluon.data.vision.ImageFolderDataset(data_dir)
    if not dataset.items:
        loose = [f for f in os.listdir(data_dir) if f.lower().endswith(IMAGE_EXTS)]
        hint = (f'; found {len(loose)} images directly in it: move them into a sub-folder'
                if loose else '')
        raise DCGANError(
            f'no PNG/JPEG images in the sub-folders of {data_dir} (expected '
            f'{data_dir}/<class>/<image>.png, like the extracted pokemon.zip){hint}')
    return dataset.items, dataset.synsets


def file_stats(data_dir, items):
    """(path under `data_dir`, size, modification time in ns) of each of list_images' items:
    what the decoded-image cache and a run's record of its images are keyed by."""
    prefix = os.path.join(os.path.expanduser(data_dir), '')  # as ImageFolderDataset joins them
    stats = []
    for path, _ in items:  # slicing, not os.path.relpath, which took most of the time
        st = os.stat(path)
        rel = path[len(prefix):] if path.startswith(prefix) else os.path.relpath(path, data_dir)
        stats.append((rel, st.st_size, st.st_mtime_ns))
    return stats


def read_images(data_dir, size=64, skip_bad_images=False, max_image_pixels=MAX_IMAGE_PIXELS,
                skipped=None, cache_dir=None, workers=None):
    """Decode and resize every image once: uint8 array (N, size, size, 3), int32 labels, classes.

    Resize is the chapter's own transform, so the pixels equal its pipeline's. Decoding runs in
    `workers` processes (default: one per core; d2l_dcgan.decode). With `cache_dir`, the decoded
    images are kept in `cache_dir/decoded` and later calls map them read-only
    (d2l_dcgan.imagecache). An image that cannot be read, or whose header gives more than
    `max_image_pixels` (None: no limit), stops with a one-line DCGANError; with
    `skip_bad_images` it is named on stderr and left out, and {'path', 'reason'} appended to
    the list `skipped` if one is given."""
    items, synsets = list_images(data_dir)
    folder = decode.Folder(data_dir, items, size, max_image_pixels, skip_bad_images,
                           workers or decode.decode_workers())
    if cache_dir is None:
        images, labels, bad = decode.in_memory(folder)
    else:
        images, labels, bad = decode.cached(folder, file_stats(data_dir, items), cache_dir)
    decode.report_skipped(bad, len(items), data_dir)
    if skipped is not None:
        skipped.extend({'path': e.path, 'reason': e.reason} for e in bad)
    return images, labels, synsets


# ToTensor (x / 255) then Normalize(0.5, 0.5) of every uint8 value, in float32 like those
# transforms: a table lookup gives their exact results faster than MXNet ops (docs/speed.md).
_NORMALIZED = (onp.arange(256, dtype='float32') / onp.float32(255) - onp.float32(0.5)) \
    / onp.float32(0.5)


def to_tensor(batch_uint8):
    """uint8 NHWC -> float32 NCHW in [-1, 1]: ToTensor then Normalize(0.5, 0.5) on a whole batch."""
    batch = onp.asarray(batch_uint8.asnumpy() if hasattr(batch_uint8, 'asnumpy') else batch_uint8)
    if batch.dtype != onp.uint8:
        raise DCGANError(f'to_tensor expects uint8 images, got {batch.dtype}')
    return np.array(_NORMALIZED[batch.transpose(0, 3, 1, 2)])


def _batchify(samples, gray_to_rgb=False):
    images, labels = zip(*samples)
    X = to_tensor(onp.stack(images))
    if gray_to_rgb:
        X = np.concatenate([X, X, X], axis=1)
    return X, np.array(onp.array(labels), dtype='int32')


def load_image_folder(data_dir, batch_size=256, size=64, shuffle=True, num_workers=0,
                      last_batch='keep', skip_bad_images=False, max_image_pixels=MAX_IMAGE_PIXELS,
                      cache_dir=None):
    """The chapter's DataLoader over any ImageFolder root: batches (X, y), X in [-1, 1].

    Images are decoded once (kept in `cache_dir/decoded` if given) and converted per batch
    rather than per image; bad ones stop it, or are skipped with `skip_bad_images` (see
    read_images)."""
    check_positive(batch_size=batch_size, size=size)
    images, labels, _ = read_images(data_dir, size, skip_bad_images=skip_bad_images,
                                    max_image_pixels=max_image_pixels, cache_dir=cache_dir)
    return array_loader(images, labels, batch_size, shuffle, num_workers, last_batch)


def array_loader(images, labels, batch_size=256, shuffle=True, num_workers=0,
                 last_batch='keep', gray_to_rgb=False):
    """A DataLoader of (X, y) over uint8 (N, H, W, C) images, X float32 NCHW in [-1, 1].

    `gray_to_rgb` repeats a gray channel three times per batch, so memory holds one copy."""
    dataset = gluon.data.ArrayDataset(images, labels)
    return gluon.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                                 num_workers=num_workers, last_batch=last_batch,
                                 batchify_fn=functools.partial(_batchify,
                                                               gray_to_rgb=gray_to_rgb))


def load_pokemon(batch_size=256, data_dir=None, cache_dir=DEFAULT_CACHE_DIR, **kwargs):
    """The chapter's Pokemon DataLoader: download (SHA-1 checked), extract, 64x64, [-1, 1], shuffled.

    With `data_dir`, any ImageFolder-style root is loaded instead and nothing is downloaded.
    The decoded images are kept in `cache_dir/decoded` (cache_dir=None: neither)."""
    if data_dir is None:
        print(f'data cache: {os.path.abspath(cache_dir or DEFAULT_CACHE_DIR)}')
        data_dir = download_extract('pokemon', cache_dir or DEFAULT_CACHE_DIR)
    return load_image_folder(data_dir, batch_size=batch_size, cache_dir=cache_dir, **kwargs)
