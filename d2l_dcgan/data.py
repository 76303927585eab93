"""The Pokemon sprites (or any image folder) as the chapter's 64x64, [-1, 1] DataLoader."""
import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as onp
from d2l import mxnet as d2l
from mxnet import gluon, image, np
from mxnet.base import MXNetError

from .errors import DCGANError
from .fileio import file_digest

POKEMON_SHA1 = 'c065c0e2593b8b161a2d7873e42418bf6a21106c'
d2l.DATA_HUB['pokemon'] = (d2l.DATA_URL + 'pokemon.zip', POKEMON_SHA1)

DEFAULT_CACHE_DIR = os.path.join('..', 'data')  # d2l's own, so a reader's earlier download is reused
IMAGE_EXTS = ('.jpg', '.jpeg', '.png')  # what ImageFolderDataset reads


def sha1_of(path):
    return file_digest(path, 'sha1')


def download(name, cache_dir=DEFAULT_CACHE_DIR, timeout=60):
    """Fetch `d2l.DATA_HUB[name]` into `cache_dir` and return its path.

    d2l.download checks neither the HTTP status nor the SHA-1 of a fresh download, so this
    one does both, and only renames a complete, verified file into place."""
    url, sha1_hash = d2l.DATA_HUB[name]
    os.makedirs(cache_dir, exist_ok=True)
    fname = os.path.join(cache_dir, url.split('/')[-1])
    if os.path.exists(fname):
        if sha1_hash is None or sha1_of(fname) == sha1_hash:
            return fname
        print(f'{fname} has the wrong SHA-1; downloading it again')
    partial = fname + '.part'
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
        _remove(partial)
        reason = getattr(e, 'reason', e)
        if isinstance(e, urllib.error.HTTPError):  # urlopen raises these before `status` is seen
            reason = f'HTTP {e.code} {e.reason}'
        raise DCGANError(
            f'could not download {url} ({reason}); without network access, put '
            f'{os.path.basename(fname)} (SHA-1 {sha1_hash}) into {cache_dir} by hand, '
            f'or pass --data-dir DIR with an image folder') from e
    except OSError as e:
        _remove(partial)
        raise DCGANError(f'could not write {partial}: {e.strerror or e}') from e
    except BaseException:
        _remove(partial)
        raise
    if sha1_hash is not None and sha1.hexdigest() != sha1_hash:
        _remove(partial)
        raise DCGANError(
            f'{url} downloaded with SHA-1 {sha1.hexdigest()}, expected {sha1_hash}; '
            f'the bad file was deleted, try again')
    os.replace(partial, fname)
    return fname


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


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

    Extraction goes to a temporary folder first, so an interrupted one is never taken for done."""
    fname = download(name, cache_dir)
    base_dir = os.path.dirname(fname)
    data_dir = os.path.splitext(fname)[0]
    marker = data_dir + '.extracted'
    sha1_hash = d2l.DATA_HUB[name][1]
    if os.path.isdir(data_dir) and os.path.exists(marker):
        with open(marker) as f:
            if f.read().strip() == str(sha1_hash):
                return data_dir
    tmp = tempfile.mkdtemp(prefix='.extract-', dir=base_dir)
    try:
        safe_extract(fname, tmp)
        _remove(marker)
        for entry in os.listdir(tmp):
            final = os.path.join(base_dir, entry)
            if os.path.isdir(final) and not os.path.islink(final):
                shutil.rmtree(final)
            elif os.path.lexists(final):
                os.remove(final)
            os.replace(os.path.join(tmp, entry), final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not os.path.isdir(data_dir):
        raise DCGANError(f'{fname} holds no folder {os.path.basename(data_dir)}/')
    with open(marker, 'w') as f:
        f.write(str(sha1_hash))
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


def _read_one(path, size):
    try:
        img = image.imread(path, flag=1)  # 3 channels: RGBA, palette and grayscale become RGB
    except (MXNetError, OSError) as e:
        raise DCGANError(f'cannot read image {path}: not a valid PNG/JPEG file') from e
    if img.ndim != 3 or img.shape[2] != 3 or img.size == 0:
        raise DCGANError(f'cannot read image {path}: decoded to shape {img.shape}')
    return gluon.data.vision.transforms.Resize(size)(img).asnumpy()


def read_images(data_dir, size=64, num_threads=2):
    """Decode and resize every image once: uint8 array (N, size, size, 3), int32 labels, classes.

    Resize is the chapter's own transform, so the pixels equal its pipeline's."""
    items, synsets = list_images(data_dir)
    paths = [p for p, _ in items]
    # imread and imresize release the GIL in MXNet's C code, so threads overlap them
    with ThreadPoolExecutor(max(1, num_threads)) as pool:
        images = onp.stack(list(pool.map(lambda p: _read_one(p, size), paths)))
    labels = onp.array([label for _, label in items], dtype='int32')
    return images, labels, synsets


# ToTensor (x / 255) then Normalize(0.5, 0.5) of every uint8 value, in float32 like those
# transforms: a table lookup gives their exact results ~7x faster than MXNet ops on the batch.
_NORMALIZED = (onp.arange(256, dtype='float32') / onp.float32(255) - onp.float32(0.5)) \
    / onp.float32(0.5)


def to_tensor(batch_uint8):
    """uint8 NHWC -> float32 NCHW in [-1, 1]: ToTensor then Normalize(0.5, 0.5) on a whole batch."""
    batch = onp.asarray(batch_uint8.asnumpy() if hasattr(batch_uint8, 'asnumpy') else batch_uint8)
    if batch.dtype != onp.uint8:
        raise DCGANError(f'to_tensor expects uint8 images, got {batch.dtype}')
    return np.array(_NORMALIZED[batch.transpose(0, 3, 1, 2)])


def _batchify(samples):
    images, labels = zip(*samples)
    return to_tensor(onp.stack(images)), np.array(onp.array(labels), dtype='int32')


def load_image_folder(data_dir, batch_size=256, size=64, shuffle=True, num_workers=0,
                      last_batch='keep'):
    """The chapter's DataLoader over any ImageFolder root: batches (X, y), X in [-1, 1].

    Images are decoded once into memory and converted per batch rather than per image."""
    for name, value in (('batch_size', batch_size), ('size', size)):
        if not isinstance(value, int) or value <= 0:
            raise DCGANError(f'{name} must be a positive integer, got {value!r}')
    images, labels, _ = read_images(data_dir, size)
    return array_loader(images, labels, batch_size, shuffle, num_workers, last_batch)


def array_loader(images, labels, batch_size=256, shuffle=True, num_workers=0,
                 last_batch='keep'):
    """A DataLoader of (X, y) over uint8 (N, H, W, C) images, X float32 NCHW in [-1, 1]."""
    dataset = gluon.data.ArrayDataset(images, labels)
    return gluon.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                                 num_workers=num_workers, last_batch=last_batch,
                                 batchify_fn=_batchify)


def load_pokemon(batch_size=256, data_dir=None, cache_dir=DEFAULT_CACHE_DIR, **kwargs):
    """The chapter's Pokemon DataLoader: download (SHA-1 checked), extract, 64x64, [-1, 1], shuffled.

    With `data_dir`, any ImageFolder-style root is loaded instead and nothing is downloaded."""
    if data_dir is None:
        data_dir = download_extract('pokemon', cache_dir)
    return load_image_folder(data_dir, batch_size=batch_size, **kwargs)
