"""Decoding images as the chapter does (MXNet's decode, flag=1, then Resize), each file checked
by Pillow first, and a whole folder on every core: forked worker processes write the uint8
images straight into shared memory, or into a new entry of the decoded-image cache
(d2l_dcgan.imagecache stores the entries; this module fills them)."""
import mmap
import multiprocessing
import os
import re
import struct
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Optional

import mxnet
import numpy as onp
import PIL
from mxnet import image, nd, np, npx
from mxnet.base import MXNetError
from PIL import JpegImagePlugin, PngImagePlugin
from tqdm import tqdm

from .cpu import core_count
from .errors import ArgumentError, DCGANError, one_line
from .imagecache import ImageCache, cache_key

# Pillow's Image.MAX_IMAGE_PIXELS, the size above which it warns of a decompression bomb
MAX_IMAGE_PIXELS = 89_478_485
CHUNK = 64  # images a worker decodes per task
_FORMATS = {b'\x89PNG\r\n\x1a\n': PngImagePlugin.PngImageFile,
            b'\xff\xd8': JpegImagePlugin.JpegImageFile}
_IEND = b'IEND\xaeB`\x82'  # a PNG's last chunk with its fixed CRC
# Pillow's words for a broken header -> what they mean here
_PLAIN = {'not identified by this driver': 'its header gives a zero width or height, or a bit '
                                           'depth or colour type that PNG/JPEG do not have',
          'Truncated File Read': 'file is truncated',
          'unpack_from requires': 'file is truncated',
          'cannot load this image': 'file is truncated before its pixel data',
          # Pillow 10 (Python 3.8's newest) says this of a JPEG that ends before its scan
          'index out of range': 'file is truncated before its pixel data'}
_DECODE_ERRORS = (MXNetError, OSError, SyntaxError, ValueError, EOFError, IndexError,
                  TypeError, struct.error)


class BadImage(ArgumentError):
    """An image that cannot be read: its `path` and the decoder's `reason`, in one line; `arg`:
    the argument that refused it (max_image_pixels), if one did."""

    def __init__(self, path, reason, arg=None):
        super().__init__(arg, f'cannot read image {path}: {reason}')
        self.path, self.reason = path, reason

    def __reduce__(self):  # decode workers send it back pickled
        return BadImage, (self.path, self.reason, self.arg)

    def __str__(self):
        return super().__str__() if self.arg else self.message


class TooManyPixels(ValueError):
    """An image whose header gives more pixels than max_image_pixels."""


# ------------------------------------------------------------------------------ one image

def _reason(e):
    """One short line of why a decoder failed: its last line, less MXNet's 'Check failed'."""
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    line = (str(e).strip().splitlines() or [type(e).__name__])[-1]
    line = re.sub(r'^(MXNetError: )?(Check failed: [^:]*: )?', '', line)
    return next((plain for words, plain in _PLAIN.items() if words in line), line)


def _open_header(f):
    """Pillow's lazy open of a PNG or JPEG (header only), without Image.open's own pixel limit."""
    head = f.read(8)
    f.seek(0)
    for magic, factory in _FORMATS.items():
        if head.startswith(magic):
            return factory(f)
    raise ValueError(f'not a PNG or JPEG file (it starts with {head!r})' if head else
                     'empty file')


def _check_body(im):
    """Pillow reads the rest of the file: a PNG's chunks and CRCs, a JPEG's every byte."""
    if im.format == 'PNG':
        im.verify()
    else:
        im.draft(None, (1, 1))  # 1/8 scale: cheap, yet every byte is read, so truncation shows
        im.load()


def _check_file(path, max_pixels):
    """(height, width) of the image at `path`, once Pillow has found its size within
    `max_pixels` (from the header, before any pixel is allocated) and its body whole."""
    with open(path, 'rb') as f:
        im = _open_header(f)
        width, height = im.size
        if max_pixels is not None and width * height > max_pixels:
            raise TooManyPixels(f'{width}x{height} is {width * height:,} pixels, more than the '
                                f'limit of {max_pixels:,}')
        _check_body(im)
        if im.format == 'PNG':  # verify() stops before IEND's CRC
            f.seek(0)
            if f.read().rfind(_IEND) < 0:
                raise OSError('truncated PNG file (inside its IEND chunk)')
    return height, width


def _decode(path):
    """MXNet's decode of an image file, flag=1: RGBA, palette and grayscale become RGB."""
    try:  # imread reads the file in C; imdecode would copy its bytes through Python first
        return image.imread(os.fsencode(path).decode('utf-8'), flag=1)
    except UnicodeDecodeError:  # MXNet passes names to C as UTF-8: not every file name is
        with open(path, 'rb') as f:
            return image.imdecode(f.read(), flag=1)


def read_one(path, size, max_pixels=MAX_IMAGE_PIXELS):
    """One image as the chapter reads it (MXNet's decode, flag=1, then Resize): uint8 HWC."""
    try:
        shape = _check_file(path, max_pixels)
        img = _decode(path)
        # transforms.Resize(size) is this op: called as is, not as a new Block per image;
        # MXNet decodes asynchronously: a failure surfaces in asnumpy, so it is inside the try
        ops = npx if isinstance(img, np.ndarray) else nd  # NumPy mode is per thread
        out = ops.image.resize(img, size, False, 1).asnumpy()
    except _DECODE_ERRORS as e:
        limit = 'max_image_pixels' if isinstance(e, TooManyPixels) else None
        raise BadImage(path, _reason(e), limit) from e
    if img.shape[:2] != shape:
        raise BadImage(path, f'decoded to {img.shape}, its header says {shape[1]}x{shape[0]}')
    return out


def decoder():
    """What decides how a file decodes: the libraries that check and decode it."""
    return f'mxnet {mxnet.__version__} imread flag=1, image.resize bilinear; Pillow {PIL.__version__}'


# ------------------------------------------------------------------ a folder, on every core

_WORK = {}  # what forked workers inherit: the paths, the image size and limit, the output


def _decode_chunk(start):
    """Decode images start..start+CHUNK into the shared output; [(index, error)] of bad ones."""
    paths, out = _WORK['paths'], _WORK['out']
    bad = []
    for i in range(start, min(start + CHUNK, len(paths))):
        try:
            out[i] = read_one(paths[i], _WORK['size'], _WORK['max_pixels'])
        except BadImage as e:
            bad.append((i, e))
    return bad


def decode_all(paths, out, size, max_pixels, workers, stop_at_first_bad=True,
               progress=None):
    """read_one of every path into `out` (a shared mapping when workers > 1: forked workers
    write into it). Returns [(index, BadImage)] of the bad ones, in order; with
    `stop_at_first_bad`, only the first."""
    _WORK.update(paths=paths, out=out, size=size, max_pixels=max_pixels)
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
    return tqdm(total=total, desc=what, unit='images', delay=1.0, leave=False)


def report_skipped(bad, total, root):
    """Name each BadImage of `bad` on stderr, one line each, then their count; raise if none of
    the `total` images of `root` could be read."""
    for e in bad:
        print(one_line(f'skipping {e.path}: {e.reason}'), file=sys.stderr)
    if bad:
        print(f'skipped {len(bad):,} of {total:,} images; see above', file=sys.stderr)
    if bad and len(bad) == total:
        raise DCGANError(f'none of the {total:,} images in {root} can be read (see above)')


def decode_workers():
    """Worker processes for decoding: one per core this process may use (as cpu.py counts)."""
    return core_count()[0] or os.cpu_count() or 1


@dataclass
class Folder:
    """The images of one folder to decode: `items` (path, label) as data.list_images lists
    them, at `size` x `size`, with the bad-image settings, on `workers` processes."""
    root: str
    items: list
    size: int
    max_pixels: Optional[int]
    skip_bad_images: bool
    workers: int

    def settings(self):
        return {'skip_bad_images': bool(self.skip_bad_images),
                'max_image_pixels': self.max_pixels}

    def decode_into(self, out):
        """Decode every image into `out`; [(index, BadImage)] of the bad ones, in order (the
        first raised unless skipping)."""
        bar = progress_bar(len(self.items), f'decoding {self.root}')
        try:
            bad = decode_all([p for p, _ in self.items], out, self.size, self.max_pixels,
                             self.workers, stop_at_first_bad=not self.skip_bad_images,
                             progress=bar)
        finally:
            if bar is not None:
                bar.close()
        if bad and not self.skip_bad_images:
            raise bad[0][1]
        return bad

    def good(self, bad):
        """Indices of the images not in `bad`, in order."""
        return sorted(set(range(len(self.items))) - {i for i, _ in bad})


def in_memory(folder):
    """(uint8 images, labels, [BadImage]) decoded in memory shared with the workers."""
    out = shared_array((len(folder.items), folder.size, folder.size, 3))
    bad = folder.decode_into(out)
    good = folder.good(bad)
    labels = onp.array([folder.items[i][1] for i in good], dtype='int32')
    return (out if not bad else out[good]), labels, [e for _, e in bad]


def cached(folder, stats, cache_dir):
    """(images, labels, [BadImage]) from the decoded-image cache in `cache_dir`, decoding and
    adding the folder's entry first if it has none; in memory if it has none and the cache
    cannot be written. `stats` are data.file_stats of the folder's items."""
    cache = ImageCache(os.path.join(cache_dir, 'decoded'))
    key = cache_key(stats, [label for _, label in folder.items], folder.size, decoder(),
                    folder.settings())
    entry = cache.load(key)
    if entry is None and not cache.writable():
        print(f'decoded-image cache: cannot write to {cache.folder}; decoding in memory',
              file=sys.stderr)
        return in_memory(folder)
    if entry is None:
        with cache.lock(key, folder.root):
            entry = cache.load(key)  # another run may have made it while this one waited
            if entry is None:
                entry = _add_entry(cache, key, folder)
    images, meta = entry
    root = os.path.abspath(folder.root)
    bad = [BadImage(os.path.join(root, b['path']), b['reason']) for b in meta['skipped']]
    return images, onp.array(meta['labels'], dtype='int32'), bad


def _add_entry(cache, key, folder):
    """Decode the folder into a new cache entry (only its good images), commit it and return
    it as ImageCache.load does."""
    items, size, root = folder.items, folder.size, os.path.abspath(folder.root)
    out = cache.create(key, (len(items), size, size, 3))
    try:
        bad = folder.decode_into(out)
        good = folder.good(bad)
        if not good:
            report_skipped([e for _, e in bad], len(items), folder.root)  # raises: none read
        if bad:  # rare: copy the good ones into an entry of their own size
            packed = cache.create(key + '-packed', (len(good), size, size, 3))
            packed[:] = out[good]
            os.remove(out.filename)
            out = packed
        return cache.commit(key, out, {
            'root': root, 'size': size, 'settings': folder.settings(),
            'files': [os.path.relpath(items[i][0], root) for i in good],
            'labels': [int(items[i][1]) for i in good],
            'skipped': [{'path': os.path.relpath(e.path, root), 'reason': e.reason}
                        for _, e in bad]})
    finally:
        if os.path.exists(out.filename) and '.tmp-' in out.filename:
            os.remove(out.filename)
