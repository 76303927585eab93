"""Fashion-MNIST for the DCGAN (the chapter's exercise 2): IDX files -> 64x64, [-1, 1] batches.

`read_idx` reads one IDX file (gzipped or raw) with numpy; `load_fashion_mnist_arrays` reads the
four files of a folder, or fetches them through Gluon's own `FashionMNIST` dataset (downloaded
and SHA-1 checked); `load_fashion_mnist` is the chapter's pipeline on them: the same `Resize`
transform (bilinear, once up front), then ToTensor and Normalize(0.5, 0.5) a batch at a time
(`data.array_loader`)."""
import gzip
import os
import zlib

import numpy as onp
from mxnet import gluon, np

from . import data
from .errors import ArgumentError, DCGANError, check_positive

__all__ = ['FASHION_CLASSES', 'read_idx', 'load_fashion_mnist_arrays', 'select_categories',
           'resize_images', 'array_loader', 'load_fashion_mnist']

# d2l's get_fashion_mnist_labels, in label order 0..9
FASHION_CLASSES = ('t-shirt', 'trouser', 'pullover', 'dress', 'coat',
                   'sandal', 'shirt', 'sneaker', 'bag', 'ankle boot')

# IDX type codes (the third byte of the magic number); all data is big-endian
_IDX_DTYPES = {0x08: '>u1', 0x09: '>i1', 0x0B: '>i2', 0x0C: '>i4', 0x0D: '>f4', 0x0E: '>f8'}
_GZIP_MAGIC = b'\x1f\x8b'
FILE_NAMES = {True: ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
              False: ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')}
_ALL_FILES = ', '.join(f'{n}.gz' for names in FILE_NAMES.values() for n in names)


def _read_bytes(path):
    """The file's bytes, gunzipped if it starts with the gzip magic (whatever its name)."""
    try:
        with open(path, 'rb') as f:
            raw = f.read()
    except FileNotFoundError:
        raise DCGANError(f'IDX file {path} does not exist') from None
    except IsADirectoryError:
        raise DCGANError(f'IDX file {path} is a directory') from None
    except OSError as e:
        raise DCGANError(f'cannot read IDX file {path}: {e.strerror or e}') from e
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError; truncated: EOFError
        raise DCGANError(f'{path} is a damaged or truncated gzip file ({e})') from e


def read_idx(path):
    """One IDX file (yann.lecun.com/exdb/mnist's format, .gz or raw) as a numpy array.

    Header: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, then each size as a big-endian
    uint32; then the values, big-endian, C order. A file that breaks any of this, or holds more
    or fewer values than its sizes say, raises DCGANError naming it. Native byte order out."""
    buf = _read_bytes(path)
    if len(buf) < 4:
        raise DCGANError(f'{path} is not an IDX file: {len(buf)} bytes, shorter than the '
                         f'4-byte magic number')
    zero, code, ndim = int.from_bytes(buf[:2], 'big'), buf[2], buf[3]
    if zero != 0 or code not in _IDX_DTYPES or ndim == 0:
        raise DCGANError(
            f'{path} is not an IDX file: magic number 0x{int.from_bytes(buf[:4], "big"):08x} '
            f'(expected 0x0000TTDD with type TT in '
            f'{", ".join(f"{c:02x}" for c in _IDX_DTYPES)} and DD >= 1 dimensions)')
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise DCGANError(f'{path} is truncated: {len(buf)} bytes, but its header alone is '
                         f'{header} bytes ({ndim} dimensions)')
    dims = tuple(int.from_bytes(buf[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim))
    dtype = onp.dtype(_IDX_DTYPES[code])
    expected = int(onp.prod(dims, dtype=onp.int64)) * dtype.itemsize
    actual = len(buf) - header
    if actual != expected:
        what = 'truncated' if actual < expected else 'too long'
        raise DCGANError(f'{path} is {what}: its header says {dims} {dtype.name} values '
                         f'({expected} bytes), but {actual} bytes follow the header')
    return onp.frombuffer(buf, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder('='))


def _find(data_dir, name):
    for candidate in (name + '.gz', name):
        path = os.path.join(data_dir, candidate)
        if os.path.isfile(path):
            return path
    raise DCGANError(f'{data_dir} has no {name}.gz (or {name}); a Fashion-MNIST folder holds '
                     f'the four IDX files {_ALL_FILES}')


def _check_arrays(images, labels, where):
    if images.ndim != 3 or images.dtype != onp.uint8:
        raise DCGANError(f'{where}: the images must be uint8 of shape (N, H, W), '
                         f'got {images.dtype} {images.shape}')
    if labels.ndim != 1 or not onp.issubdtype(labels.dtype, onp.integer):
        raise DCGANError(f'{where}: the labels must be integers of shape (N,), '
                         f'got {labels.dtype} {labels.shape}')
    if len(images) != len(labels):
        raise DCGANError(f'{where}: {len(images)} images but {len(labels)} labels')
    if len(labels) and (labels.min() < 0 or labels.max() >= len(FASHION_CLASSES)):
        raise DCGANError(f'{where}: labels range over {labels.min()}..{labels.max()}, '
                         f'expected 0..{len(FASHION_CLASSES) - 1}')


def _one_line(e, limit=200):
    text = ' '.join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[:limit - 3] + '...'


def load_fashion_mnist_arrays(data_dir=None, train=True):
    """Fashion-MNIST's training (or, with train=False, test) set: uint8 images (N, 28, 28) and
    int32 labels (N,), label order as FASHION_CLASSES.

    With `data_dir`, its `train-images-idx3-ubyte[.gz]` and `train-labels-idx1-ubyte[.gz]` (or
    the `t10k-` ones) are read and nothing is downloaded. Without it, Gluon's
    `gluon.data.vision.FashionMNIST` fetches them (into $MXNET_HOME/datasets/fashion-mnist, SHA-1
    checked); when that fails, e.g. offline, the DCGANError says to pass a folder instead."""
    if data_dir is None:
        try:
            dataset = gluon.data.vision.FashionMNIST(train=train)
            images, labels = dataset._data, dataset._label
            images = images.asnumpy() if hasattr(images, 'asnumpy') else onp.asarray(images)
            labels = labels.asnumpy() if hasattr(labels, 'asnumpy') else onp.asarray(labels)
            images = images.reshape(images.shape[:3]).astype(onp.uint8)
            labels = labels.astype(onp.int32)
        except Exception as e:  # network, SHA-1, disk: Gluon raises many kinds
            raise ArgumentError(
                'data_dir', f'could not get Fashion-MNIST through Gluon ({type(e).__name__}: '
                f'{_one_line(e)}); without network access, give a data_dir with the four IDX '
                f'files ({_ALL_FILES})') from e
        _check_arrays(images, labels, 'Gluon\'s FashionMNIST')
        return images, labels
    if not os.path.isdir(data_dir):
        raise DCGANError(f'Fashion-MNIST folder {data_dir} '
                         f'{"is not a directory" if os.path.exists(data_dir) else "does not exist"}')
    images_name, labels_name = FILE_NAMES[bool(train)]
    images_path, labels_path = _find(data_dir, images_name), _find(data_dir, labels_name)
    images, labels = read_idx(images_path), read_idx(labels_path)
    _check_arrays(images, labels, f'{images_path} and {labels_path}')
    return images, labels.astype(onp.int32)


def select_categories(labels, categories):
    """Indices of the labels in `categories` (label numbers or FASHION_CLASSES names); all if None."""
    labels = onp.asarray(labels)
    if categories is None:
        return onp.arange(len(labels))
    if isinstance(categories, (str, int, onp.integer)):
        categories = [categories]
    wanted = set()
    for c in categories:
        if isinstance(c, str):
            name = c.strip().lower()
            if name not in FASHION_CLASSES:
                raise DCGANError(f'unknown Fashion-MNIST category {c!r}; the categories are '
                                 f'{", ".join(FASHION_CLASSES)} (or their numbers 0-9)')
            wanted.add(FASHION_CLASSES.index(name))
        elif isinstance(c, (int, onp.integer)) and not isinstance(c, bool) and 0 <= c < 10:
            wanted.add(int(c))
        else:
            raise DCGANError(f'a category must be a name or a number 0-9, got {c!r}')
    if not wanted:
        raise DCGANError('categories is empty; pass None for all ten')
    index = onp.flatnonzero(onp.isin(labels, sorted(wanted)))
    if len(index) == 0:
        names = ', '.join(FASHION_CLASSES[c] for c in sorted(wanted))
        raise DCGANError(f'no images of the categories {names} among the {len(labels)} images')
    return index


def resize_images(images, size, interpolation=1, chunk=4096):
    """uint8 (N, H, W) or (N, H, W, C) -> uint8 (N, size, size, C) with Gluon's Resize transform.

    interpolation=1 (bilinear) is the chapter's `Resize(64)`; 3 (area) suits shrinking."""
    images = onp.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.dtype != onp.uint8:
        raise DCGANError(f'images must be uint8 (N, H, W) or (N, H, W, C), '
                         f'got {images.dtype} {images.shape}')
    if images.shape[1:3] == (size, size):
        return images
    resize = gluon.data.vision.transforms.Resize(size, interpolation=interpolation)
    out = onp.empty((len(images), size, size, images.shape[3]), onp.uint8)
    for i in range(0, len(images), chunk):  # a whole batch per call; chunks bound the memory
        out[i:i + chunk] = resize(np.array(images[i:i + chunk], dtype='uint8')).asnumpy()
    return out


def array_loader(images, labels, batch_size=256, size=64, channels=1, categories=None,
                 shuffle=True, last_batch='keep'):
    """A DataLoader of (X, y) over uint8 images: X float32 (B, channels, size, size) in [-1, 1].

    `images` (N, H, W) or (N, H, W, 1) are resized once up front (skipped if already
    size x size); channels=3 repeats the gray channel per batch, so memory holds one copy."""
    check_positive(batch_size=batch_size, size=size)
    if channels not in (1, 3):
        raise DCGANError(f'channels must be 1 or 3, got {channels!r}')
    labels = onp.asarray(labels)
    index = select_categories(labels, categories)
    if categories is not None:
        images, labels = images[index], labels[index]
    resized = resize_images(images, size)
    if resized.shape[3] != 1:
        raise DCGANError(f'expected gray images, got {resized.shape[3]} channels')
    return data.array_loader(resized, labels.astype(onp.int32), batch_size, shuffle,
                             last_batch=last_batch, gray_to_rgb=channels == 3)


def load_fashion_mnist(batch_size=256, data_dir=None, size=64, channels=1, categories=None,
                       shuffle=True, train=True, limit=None):
    """Fashion-MNIST as the chapter's DataLoader: X float32 (B, channels, size, size) in [-1, 1].

    The images go through the chapter's Resize(size) once, then ToTensor and Normalize(0.5, 0.5)
    per batch; channels=3 repeats the gray channel (for the chapter's RGB nets); `categories`
    (label numbers or FASHION_CLASSES names) keeps only those; `limit` keeps the first N images
    (before `categories`). See load_fashion_mnist_arrays for `data_dir`."""
    images, labels = load_fashion_mnist_arrays(data_dir, train=train)
    if limit is not None:
        check_positive(limit=limit)
        images, labels = images[:limit], labels[:limit]
    return array_loader(images, labels, batch_size=batch_size, size=size, channels=channels,
                        categories=categories, shuffle=shuffle)
