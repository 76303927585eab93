"""d2l_dcgan.fashion, offline: IDX files written here, Gluon's downloader monkeypatched away.

`write_fake_fashion_mnist` is also what tests/test_exercises.py trains the Fashion-MNIST exercise
on: ten crude class-dependent silhouettes (white on black, like Fashion-MNIST) with jitter."""
import gzip
import os

import numpy as onp
import pytest

from d2l_dcgan import DCGANError
from d2l_dcgan import fashion
from d2l_dcgan.fashion import (FASHION_CLASSES, load_fashion_mnist, load_fashion_mnist_arrays,
                               read_idx)

IDX_CODES = {onp.dtype('uint8'): 0x08, onp.dtype('int8'): 0x09, onp.dtype('int16'): 0x0B,
             onp.dtype('int32'): 0x0C, onp.dtype('float32'): 0x0D, onp.dtype('float64'): 0x0E}


def idx_bytes(array):
    """The IDX encoding of a numpy array: magic 0x0000TTDD, big-endian sizes, big-endian data."""
    array = onp.asarray(array)
    header = bytes([0, 0, IDX_CODES[array.dtype], array.ndim])
    header += b''.join(int(n).to_bytes(4, 'big') for n in array.shape)
    return header + array.astype(array.dtype.newbyteorder('>')).tobytes()


def write_idx(path, array, gz=None):
    data = idx_bytes(array)
    if gz if gz is not None else str(path).endswith('.gz'):
        data = gzip.compress(data)
    with open(path, 'wb') as f:
        f.write(data)
    return path


def draw_item(label, rng):
    """One 28x28 uint8 silhouette of category `label`, jittered in place, size and brightness."""
    img = onp.zeros((36, 36), onp.float64)  # drawn larger, then cropped with a random offset
    s = 4  # the silhouettes live in [s, s+28)
    w = int(rng.integers(-1, 2))  # width jitter
    if label == 0:    # t-shirt: short sleeves
        img[s + 4:s + 8, s + 3:s + 25], img[s + 4:s + 24, s + 8 - w:s + 20 + w] = 1, 1
    elif label == 1:  # trouser: two legs
        img[s + 2:s + 6, s + 8:s + 20] = 1
        img[s + 2:s + 27, s + 8:s + 13 + w], img[s + 2:s + 27, s + 15 - w:s + 20] = 1, 1
    elif label == 2:  # pullover: long sleeves
        img[s + 4:s + 24, s + 8:s + 20] = 1
        img[s + 4:s + 22, s + 3:s + 7], img[s + 4:s + 22, s + 21:s + 25] = 0.8, 0.8
    elif label == 3:  # dress: widening downwards
        for r in range(3, 27):
            half = 3 + (r - 3) // 3 + w
            img[s + r, s + 14 - half:s + 14 + half] = 1
    elif label == 4:  # coat: long sleeves, a dark zip
        img[s + 3:s + 26, s + 7:s + 21] = 0.9
        img[s + 3:s + 24, s + 2:s + 6], img[s + 3:s + 24, s + 22:s + 26] = 0.9, 0.9
        img[s + 5:s + 26, s + 13:s + 15] = 0.2
    elif label == 5:  # sandal: thin straps
        for r in (14, 18, 22):
            img[s + r:s + r + 1, s + 2:s + 26] = 1
        img[s + 22:s + 25, s + 2:s + 26] = 0.7
    elif label == 6:  # shirt: sleeves and a collar notch
        img[s + 3:s + 25, s + 8:s + 20], img[s + 3:s + 12, s + 3:s + 25] = 0.8, 0.8
        img[s + 3:s + 7, s + 12:s + 16] = 0
    elif label == 7:  # sneaker: a low wedge
        for r in range(14, 24):
            img[s + r, s + 2:s + 2 + 12 + (r - 14) * 1 + w] = 1
    elif label == 8:  # bag: a box with a handle
        img[s + 10:s + 26, s + 3:s + 25] = 0.9
        img[s + 3:s + 10, s + 8:s + 10], img[s + 3:s + 10, s + 18:s + 20] = 1, 1
        img[s + 3:s + 5, s + 8:s + 20] = 1
    else:             # ankle boot: an L
        img[s + 4:s + 24, s + 6:s + 14] = 1
        img[s + 18:s + 25, s + 6:s + 26] = 1
    dy, dx = rng.integers(2, 7, size=2)
    img = img[dy:dy + 28, dx:dx + 28] * rng.uniform(0.6, 1.0)
    img += rng.normal(0, 0.04, img.shape) * (img > 0)
    return onp.clip(img * 255, 0, 255).astype(onp.uint8)


def fake_fashion_arrays(num, seed=0):
    rng = onp.random.default_rng(seed)
    labels = (onp.arange(num) % 10).astype(onp.uint8)
    rng.shuffle(labels)
    images = onp.stack([draw_item(int(y), rng) for y in labels])
    return images, labels


def write_fake_fashion_mnist(folder, num_train=64, num_test=32, seed=0, gz=True):
    """The four Fashion-MNIST IDX files of a synthetic set into `folder`; returns the arrays."""
    os.makedirs(folder, exist_ok=True)
    ext = '.gz' if gz else ''
    arrays = {}
    for split, num in (('train', num_train), ('t10k', num_test)):
        images, labels = fake_fashion_arrays(num, seed + (split == 't10k'))
        write_idx(os.path.join(folder, f'{split}-images-idx3-ubyte{ext}'), images)
        write_idx(os.path.join(folder, f'{split}-labels-idx1-ubyte{ext}'), labels)
        arrays[split] = images, labels
    return arrays


@pytest.fixture(scope='module')
def fake_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp('fashion')
    return str(folder), write_fake_fashion_mnist(str(folder))


@pytest.fixture
def no_download(monkeypatch):
    """Gluon's FashionMNIST raising as it does offline; counts the calls."""
    calls = []

    def offline(*args, **kwargs):
        calls.append((args, kwargs))
        raise OSError('Failed downloading url https://apache-mxnet.s3-accelerate.dualstack.'
                      'amazonaws.com/gluon/dataset/fashion-mnist/train-images-idx3-ubyte.gz\n'
                      'Temporary failure in name resolution')
    monkeypatch.setattr(fashion.gluon.data.vision, 'FashionMNIST', offline)
    return calls


# --- read_idx ---------------------------------------------------------------------------------

@pytest.mark.parametrize('gz', [True, False])
def test_idx_round_trip_exact(tmp_path, fake_dir, gz):
    _, arrays = fake_dir
    images, labels = arrays['train']
    assert images.shape == (64, 28, 28) and images.dtype == onp.uint8
    ext = '.gz' if gz else ''
    got = read_idx(write_idx(tmp_path / f'images{ext}', images, gz))
    assert got.dtype == onp.uint8 and got.shape == images.shape
    assert onp.array_equal(got, images)
    assert onp.array_equal(read_idx(write_idx(tmp_path / f'labels{ext}', labels, gz)), labels)


def test_idx_other_dtypes_come_back_native(tmp_path):
    for dtype in ('int8', 'int16', 'int32', 'float32', 'float64'):
        a = (onp.arange(24) - 12).reshape(2, 3, 4).astype(dtype)
        got = read_idx(write_idx(tmp_path / f'{dtype}.idx', a))
        assert got.dtype == onp.dtype(dtype) and got.dtype.isnative
        assert onp.array_equal(got, a)
        got[0, 0, 0] = 1  # a writable copy, not a view of the file's bytes


def test_gzip_is_detected_by_content_not_name(tmp_path):
    a = onp.arange(12, dtype=onp.uint8).reshape(3, 4)
    assert onp.array_equal(read_idx(write_idx(tmp_path / 'gz-without-suffix', a, gz=True)), a)


@pytest.mark.parametrize('content, words', [
    (b'\x00\x00\x07\x01\x00\x00\x00\x01\x00', 'magic number 0x00000701'),  # unknown type 07
    (b'\x08\x03\x08\x03' + bytes(12), 'magic number 0x08030803'),           # first bytes not 0
    (b'\x00\x00\x08\x00', 'magic number 0x00000800'),                        # no dimensions
    (b'\x00\x00', 'shorter than the 4-byte magic number'),
    (b'', 'shorter than the 4-byte magic number'),
    (b'\x00\x00\x08\x03\x00\x00\x00\x02', 'header alone is 16 bytes'),
])
def test_bad_header_names_the_file(tmp_path, content, words):
    path = tmp_path / 'bad-idx3-ubyte'
    path.write_bytes(content)
    with pytest.raises(DCGANError, match='bad-idx3-ubyte') as e:
        read_idx(str(path))
    assert words in str(e.value)


def test_truncated_and_too_long_files(tmp_path):
    data = idx_bytes(onp.zeros((4, 28, 28), onp.uint8))
    (tmp_path / 'cut').write_bytes(data[:-10])
    with pytest.raises(DCGANError, match=r'cut is truncated: its header says \(4, 28, 28\) '
                                         r'uint8 values \(3136 bytes\), but 3126 bytes'):
        read_idx(str(tmp_path / 'cut'))
    (tmp_path / 'long').write_bytes(data + b'\x00')
    with pytest.raises(DCGANError, match='long is too long'):
        read_idx(str(tmp_path / 'long'))


def test_truncated_or_corrupt_gzip_names_the_file(tmp_path):
    gz = gzip.compress(idx_bytes(onp.zeros((4, 28, 28), onp.uint8)))
    (tmp_path / 'cut.gz').write_bytes(gz[:len(gz) // 2])
    with pytest.raises(DCGANError, match=r'cut\.gz is a damaged or truncated gzip file'):
        read_idx(str(tmp_path / 'cut.gz'))
    (tmp_path / 'crc.gz').write_bytes(gz[:-8] + b'\xff' * 8)  # wrong CRC and length
    with pytest.raises(DCGANError, match=r'crc\.gz is a damaged or truncated gzip file'):
        read_idx(str(tmp_path / 'crc.gz'))


def test_missing_file(tmp_path):
    with pytest.raises(DCGANError, match='nothing-here does not exist'):
        read_idx(str(tmp_path / 'nothing-here'))


# --- load_fashion_mnist_arrays -----------------------------------------------------------------

@pytest.mark.parametrize('gz', [True, False])
def test_arrays_from_a_folder(tmp_path, gz):
    arrays = write_fake_fashion_mnist(str(tmp_path), num_train=20, num_test=10, gz=gz)
    for train, split in ((True, 'train'), (False, 't10k')):
        images, labels = load_fashion_mnist_arrays(str(tmp_path), train=train)
        assert images.dtype == onp.uint8 and images.shape == (len(arrays[split][0]), 28, 28)
        assert labels.dtype == onp.int32
        assert onp.array_equal(images, arrays[split][0])
        assert onp.array_equal(labels, arrays[split][1])


def test_folder_problems(tmp_path):
    with pytest.raises(DCGANError, match='does not exist'):
        load_fashion_mnist_arrays(str(tmp_path / 'nope'))
    (tmp_path / 'file').write_text('x')
    with pytest.raises(DCGANError, match='is not a directory'):
        load_fashion_mnist_arrays(str(tmp_path / 'file'))
    with pytest.raises(DCGANError, match=r'has no train-images-idx3-ubyte\.gz .*four IDX files'):
        load_fashion_mnist_arrays(str(tmp_path))
    write_idx(tmp_path / 'train-images-idx3-ubyte', onp.zeros((3, 28, 28), onp.uint8))
    with pytest.raises(DCGANError, match=r'has no train-labels-idx1-ubyte\.gz'):
        load_fashion_mnist_arrays(str(tmp_path))
    write_idx(tmp_path / 'train-labels-idx1-ubyte', onp.zeros(4, onp.uint8))
    with pytest.raises(DCGANError, match='3 images but 4 labels'):
        load_fashion_mnist_arrays(str(tmp_path))
    write_idx(tmp_path / 'train-labels-idx1-ubyte', onp.array([0, 1, 10], onp.uint8))
    with pytest.raises(DCGANError, match=r'labels range over 0\.\.10, expected 0\.\.9'):
        load_fashion_mnist_arrays(str(tmp_path))
    write_idx(tmp_path / 'train-images-idx3-ubyte', onp.zeros((3, 28, 28), onp.float32))
    with pytest.raises(DCGANError, match=r'images must be uint8 of shape \(N, H, W\)'):
        load_fashion_mnist_arrays(str(tmp_path))


def test_gluon_download_failure_is_one_line(no_download):
    with pytest.raises(DCGANError) as e:
        load_fashion_mnist_arrays()
    message = str(e.value)
    assert '\n' not in message
    assert message.startswith('argument data_dir: could not get Fashion-MNIST through Gluon '
                              '(OSError: Failed downloading url')
    assert 'give a data_dir with the four IDX files' in message and '--' not in message
    assert 'train-images-idx3-ubyte.gz' in message and 't10k-labels-idx1-ubyte.gz' in message
    assert len(no_download) == 1 and no_download[0][1] == {'train': True}
    with pytest.raises(DCGANError):
        load_fashion_mnist(batch_size=8)  # the loader goes the same way


def test_gluon_path_takes_the_dataset_arrays(monkeypatch):
    """With a dataset object like Gluon's (NDArray (N, 28, 28, 1) images), the arrays come out."""
    from mxnet import np as mnp
    images, labels = fake_fashion_arrays(12)

    class FakeFashionMNIST:
        def __init__(self, train=True):
            self._data = mnp.array(images[..., None], dtype='uint8')
            self._label = labels.astype(onp.int32)
    monkeypatch.setattr(fashion.gluon.data.vision, 'FashionMNIST', FakeFashionMNIST)
    got_images, got_labels = load_fashion_mnist_arrays(train=False)
    assert got_images.dtype == onp.uint8 and onp.array_equal(got_images, images)
    assert got_labels.dtype == onp.int32 and onp.array_equal(got_labels, labels)


# --- load_fashion_mnist ------------------------------------------------------------------------

def _all_batches(loader):
    Xs, ys = zip(*[(X.asnumpy(), y.asnumpy()) for X, y in loader])
    return onp.concatenate(Xs), onp.concatenate(ys)


@pytest.mark.parametrize('channels', [1, 3])
def test_loader_shapes_and_range(fake_dir, channels):
    folder, arrays = fake_dir
    loader = load_fashion_mnist(batch_size=16, data_dir=folder, channels=channels,
                                shuffle=False)
    sizes = [X.shape for X, _ in loader]
    assert sizes == [(16, channels, 64, 64)] * 4
    X, y = _all_batches(loader)
    assert X.dtype == onp.float32 and X.min() >= -1 and X.max() <= 1
    assert X.min() == -1 and X.max() > 0.5  # black backgrounds, bright silhouettes
    assert y.dtype == onp.int32 and onp.array_equal(y, arrays['train'][1])
    if channels == 3:
        assert onp.array_equal(X[:, 0], X[:, 1]) and onp.array_equal(X[:, 0], X[:, 2])


def test_loader_pixels_are_the_chapters_pipeline(fake_dir):
    """Resize(64) -> ToTensor -> Normalize(0.5, 0.5) image by image, as the chapter composes it."""
    from mxnet import gluon, np as mnp
    folder, arrays = fake_dir
    X, _ = _all_batches(load_fashion_mnist(batch_size=64, data_dir=folder, shuffle=False))
    T = gluon.data.vision.transforms
    chapter = T.Compose([T.Resize(64), T.ToTensor(), T.Normalize(0.5, 0.5)])
    for i in (0, 17, 63):
        expected = chapter(mnp.array(arrays['train'][0][i][..., None], dtype='uint8'))
        onp.testing.assert_allclose(X[i], expected.asnumpy(), atol=1e-6)


def test_loader_size_limit_and_test_split(fake_dir):
    folder, arrays = fake_dir
    X, y = _all_batches(load_fashion_mnist(batch_size=8, data_dir=folder, size=28, limit=10,
                                           train=False, shuffle=False))
    assert X.shape == (10, 1, 28, 28)
    assert onp.array_equal(y, arrays['t10k'][1][:10])
    expected = arrays['t10k'][0][:10].astype(onp.float32) / 255 * 2 - 1  # no resize at 28
    onp.testing.assert_allclose(X[:, 0], expected, atol=1e-6)


def test_categories_filter(fake_dir):
    folder, arrays = fake_dir
    labels = arrays['train'][1]
    for categories, wanted in (([8], {8}), (['bag', 'Ankle Boot'], {8, 9}),
                               ('trouser', {1}), ((0, 'sandal'), {0, 5})):
        loader = load_fashion_mnist(batch_size=4, data_dir=folder, categories=categories,
                                    shuffle=False)
        X, y = _all_batches(loader)
        assert set(y.tolist()) == wanted
        assert len(y) == onp.isin(labels, sorted(wanted)).sum()
    assert FASHION_CLASSES[8] == 'bag' and len(FASHION_CLASSES) == 10


def test_category_and_argument_errors(fake_dir):
    folder, _ = fake_dir
    with pytest.raises(DCGANError, match="unknown Fashion-MNIST category 'hat'"):
        load_fashion_mnist(data_dir=folder, categories=['hat'])
    with pytest.raises(DCGANError, match='a name or a number 0-9, got 10'):
        load_fashion_mnist(data_dir=folder, categories=[10])
    with pytest.raises(DCGANError, match='categories is empty'):
        load_fashion_mnist(data_dir=folder, categories=[])
    with pytest.raises(DCGANError, match='no images of the categories bag'):
        fashion.array_loader(onp.zeros((3, 28, 28), onp.uint8), [0, 1, 2], categories=['bag'])
    with pytest.raises(DCGANError, match='channels must be 1 or 3'):
        load_fashion_mnist(data_dir=folder, channels=2)
    with pytest.raises(DCGANError, match='argument batch_size: must be a positive integer'):
        load_fashion_mnist(batch_size=0, data_dir=folder)
    with pytest.raises(DCGANError, match='argument limit: must be a positive integer'):
        load_fashion_mnist(data_dir=folder, limit=0)
