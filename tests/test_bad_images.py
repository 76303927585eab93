"""Image folders as users have them: truncated, corrupt, huge and odd images, made on the fly.

A hostile file gives one line naming it (exit 2 from the command line), nothing from the C
decoders on stderr, and no traceback; with --skip-bad-images the good images still train. An odd
but valid file loads with the chapter's own pixels (MXNet's imread, flag=1, then Resize(64))."""
import io
import json
import os
import re
import struct
import zlib

import numpy as onp
import pytest
from PIL import Image

from d2l_dcgan import DCGANError, cli, load_image_folder, load_pokemon, read_images
from d2l_dcgan import decode as decode_module
from mxnet import gluon, image
from test_cli import TINY, assert_one_line_error, metrics, run_all, train_cmd


def saved(img, fmt, **kwargs):
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def encode(fmt, size=(40, 30), seed=0, mode='RGB', **kwargs):
    """Random pixels of `size` (width, height) encoded by Pillow as `fmt`: bytes."""
    rng = onp.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=onp.uint8))
    return saved(img.convert(mode), fmt, **kwargs)


def chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))


def png(width, height, depth=8, colour=2, body=None):
    """A PNG written by hand, with right CRCs: any IHDR, and by default all-black RGB rows."""
    ihdr = struct.pack('>IIBBBBB', width, height, depth, colour, 0, 0, 0)
    body = zlib.compress(b'\0' * height * (width * 3 + 1)) if body is None else body
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', body)
            + chunk(b'IEND', b''))


def put(data, at, new):
    return data[:at] + new + data[at + len(new):]


PNG, JPEG = encode('PNG'), encode('JPEG', quality=90)
IDAT = PNG.index(b'IDAT')
SOF, DHT, SOS = (JPEG.index(marker) for marker in (b'\xff\xc0', b'\xff\xc4', b'\xff\xda'))
ZERO_SIZE = 'its header gives a zero width or height, or a bit depth or colour type'

# name -> (file name, bytes, what the line must say after 'cannot read image PATH: ')
HOSTILE = {
    'png cut after its signature': ('cut8.png', PNG[:8], 'file is truncated'),
    'png cut in IHDR': ('cut20.png', PNG[:20], 'file is truncated'),
    'png cut before IDAT': ('cut33.png', PNG[:33], 'file is truncated'),
    'png cut in half': ('half.png', PNG[:len(PNG) // 2], 'file is truncated'),
    'png cut before IEND': ('noiend.png', PNG[:-12], 'truncated PNG file'),
    'png cut in IEND': ('cutiend.png', PNG[:-1], 'truncated PNG file (inside its IEND chunk)'),
    'png bad CRC': ('crc.png', put(PNG, IDAT + 20, bytes([PNG[IDAT + 20] ^ 0xFF])),
                    "broken PNG file (bad header checksum in b'IDAT')"),
    'png zero width': ('zero.png', png(0, 10), ZERO_SIZE),
    'png bit depth 3': ('depth3.png', png(10, 10, depth=3), ZERO_SIZE),
    'png 16-bit palette': ('p16.png', png(10, 10, depth=16, colour=3), ZERO_SIZE),
    'png 50000x50000 header': ('bomb.png', png(50000, 50000, body=zlib.compress(bytes(99))),
                               '50000x50000 is 2,500,000,000 pixels, more than the limit of '
                               '89,478,485'),
    'jpeg cut in its header': ('cut100.jpg', JPEG[:100], 'file is truncated'),
    'jpeg cut before its scan': ('nosos.jpg', JPEG[:SOS],
                                 'file is truncated before its pixel data'),
    'jpeg cut in half': ('half.jpg', JPEG[:(SOS + len(JPEG)) // 2], 'image file is truncated ('),
    'jpeg without EOI': ('noeoi.jpg', JPEG[:-2], 'image file is truncated ('),
    'jpeg bad Huffman table': ('huffman.jpg', put(JPEG, DHT + 5, b'\xff' * 16),
                               'broken data stream when reading image file'),
    'jpeg 12-bit': ('12bit.jpg', put(JPEG, SOF + 4, b'\x0c'), 'cannot handle 12-bit layers'),
    'jpeg zero height': ('zero.jpg', put(JPEG, SOF + 5, b'\0\0'), ZERO_SIZE),
    'jpeg 50000x50000 header': ('bomb.jpg', put(JPEG, SOF + 5, struct.pack('>HH', 50000, 50000)),
                                '50000x50000 is 2,500,000,000 pixels'),
    'html page saved as .jpg': ('page.jpg', b'<!DOCTYPE html><html>404</html>',
                                "not a PNG or JPEG file (it starts with b'<!DOCTYP')"),
    'empty .png': ('empty.png', b'', 'empty file'),
    'PNG named .jpg, cut': ('png.jpg', PNG[:-12], 'truncated PNG file'),
}


def make_folder(root, files):
    """An ImageFolder root with class c holding {name: bytes}; names may be bytes (non-UTF-8)."""
    folder = os.path.join(os.fsencode(root), b'c')
    os.makedirs(folder, exist_ok=True)
    for name, content in files.items():
        with open(os.path.join(folder, os.fsencode(name)), 'wb') as f:
            f.write(content)
    return str(root)


def good_files(n):
    return {f'good{i}.png': encode('PNG', (64, 64), seed=i) for i in range(n)}


def refused_out_dir(tmp_path):
    """What a refused run leaves in its --out-dir (one on an empty data folder), as a listing."""
    (tmp_path / 'empty').mkdir()
    assert cli.train_main(['--data-dir', str(tmp_path / 'empty'),
                           '--out-dir', str(tmp_path / 'ref')]) == 2
    return listing(tmp_path / 'ref')


def listing(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder)
                  for d, dirs, files in os.walk(folder) for f in dirs + files)


# --------------------------------------------------------------------- hostile files, one by one

@pytest.mark.parametrize('case', list(HOSTILE))
def test_hostile_image_is_one_line_and_exit_2(case, tmp_path, capfd):
    name, content, reason = HOSTILE[case]
    root = make_folder(tmp_path / 'images', {**good_files(2), name: content})
    expected = refused_out_dir(tmp_path)
    capfd.readouterr()
    code = cli.train_main(['--data-dir', root, '--out-dir', str(tmp_path / 'out'),
                           '--num-epochs', '1', *TINY], prog='train')
    out, err = capfd.readouterr()
    assert_one_line_error(code, out, err, reason)  # and no libpng/libjpeg line from C
    too_big = reason.endswith(' pixels') or 'limit' in reason
    limit = 'argument --max-image-pixels: ' if too_big else ''
    assert err.startswith(f'train: error: {limit}cannot read image '
                          f'{os.path.join(root, "c", name)}: ')
    assert listing(tmp_path / 'out') == expected  # nothing written beyond a refusal's


def test_every_cut_point_of_a_png_and_a_jpeg_is_refused(tmp_path, capfd):
    """A copy interrupted anywhere: every prefix of a small PNG and JPEG fails in the check."""
    path = str(tmp_path / 'cut.img')
    for data in (encode('PNG', (16, 12)), encode('JPEG', (16, 12)),
                 encode('JPEG', (16, 12), progressive=True)):
        for n in range(len(data)):
            with open(path, 'wb') as f:
                f.write(data[:n])
            with pytest.raises(DCGANError) as e:
                decode_module.read_one(path, 64)
            assert '\n' not in str(e.value)
    assert capfd.readouterr().err == ''  # Pillow's checks refused them all before libpng saw one


@pytest.mark.parametrize('body, libpng', [
    (b'\x78\x9c' + b'\x13' * 40, 'bad adaptive filter value'),
    (zlib.compress(b'\0' * 5 * 31), 'Not enough image data'),
], ids=['bad deflate data', 'too few rows'])
def test_png_with_right_crcs_but_bad_pixel_data(body, libpng, tmp_path, capfd):
    """Only a broken encoder writes these: the CRCs pass, so MXNet's decoder is the one to fail,
    and libpng prints its own line from C before ours."""
    root = make_folder(tmp_path, {'bad.png': png(10, 10, body=body)})
    with pytest.raises(DCGANError, match=r'bad.png: Decoding failed\. Invalid image file\.$'):
        read_images(root)
    assert capfd.readouterr().err == f'libpng error: {libpng}\n'


def test_jpeg_with_damaged_scan_bytes_loads_as_libjpeg_decodes_it(tmp_path, capfd):
    """Bytes changed inside a JPEG's scan leave its structure whole: libjpeg only warns (from C)
    and decodes garbled blocks, in Pillow and MXNet alike, so it loads as the chapter's would."""
    root = make_folder(tmp_path, {'scan.jpg': put(JPEG, SOS + 30, bytes(range(1, 200)))})
    images, _, _ = read_images(root)
    onp.testing.assert_array_equal(images[0], chapters_pixels(os.path.join(root, 'c', 'scan.jpg')))
    assert capfd.readouterr().err.startswith('Corrupt JPEG data: ')


def test_a_png_with_bytes_after_its_end_loads(tmp_path):
    """Data after IEND (appended by some tools) is ignored by libpng, and so here."""
    root = make_folder(tmp_path, {'tail.png': encode('PNG', (16, 12)) + b'appended' * 40})
    images, _, _ = read_images(root)
    onp.testing.assert_array_equal(images[0], chapters_pixels(os.path.join(root, 'c', 'tail.png')))


def test_huge_header_is_refused_before_decoding(tmp_path, monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError('MXNet\'s decoder was called')
    monkeypatch.setattr(decode_module.image, 'imread', no_decoding)
    for case in ('png 50000x50000 header', 'jpeg 50000x50000 header'):
        name, content, reason = HOSTILE[case]
        root = make_folder(tmp_path / name, {name: content})
        with pytest.raises(DCGANError, match=re.escape(reason)):
            read_images(root)


def test_a_decode_that_disagrees_with_the_header_is_refused(tmp_path, monkeypatch):
    decode = decode_module.image.imread
    monkeypatch.setattr(decode_module.image, 'imread', lambda *a, **k: decode(*a, **k)[:20])
    root = make_folder(tmp_path, {'a.png': encode('PNG', (40, 30))})
    with pytest.raises(DCGANError, match=r'a\.png: decoded to \(20, 40, 3\), its header says '
                                         r'40x30$'):
        read_images(root)


def test_max_image_pixels(tmp_path, capfd):
    root = make_folder(tmp_path / 'images', {'a.png': encode('PNG', (120, 100))})
    assert read_images(root, max_image_pixels=12_000)[0].shape == (1, 64, 64, 3)
    assert read_images(root, max_image_pixels=None)[0].shape == (1, 64, 64, 3)
    with pytest.raises(DCGANError, match=r'^argument max_image_pixels: cannot read image .*'
                                         r'a\.png: 120x100 is 12,000 pixels, more than the '
                                         r'limit of 11,999$'):  # the argument, in a notebook
        read_images(root, max_image_pixels=11_999)
    code = cli.train_main(['--data-dir', root, '--out-dir', str(tmp_path / 'out'),
                           '--max-image-pixels', '11999', *TINY], prog='train')
    out, err = capfd.readouterr()
    assert_one_line_error(code, out, err, 'more than the limit of 11,999')
    assert err.startswith('train: error: argument --max-image-pixels: cannot read image ')


# ------------------------------------------------------------------------- --skip-bad-images

def test_skip_bad_images_in_the_api(tmp_path, capfd):
    root = make_folder(tmp_path, {**good_files(3), 'half.png': PNG[:len(PNG) // 2],
                                  'empty.jpg': b''})
    skipped = []
    images, labels, _ = read_images(root, skip_bad_images=True, skipped=skipped)
    assert images.shape == (3, 64, 64, 3) and labels.tolist() == [0, 0, 0]
    bad = [os.path.join(root, 'c', name) for name in ('empty.jpg', 'half.png')]
    assert skipped == [{'path': bad[0], 'reason': 'empty file'},
                       {'path': bad[1], 'reason': 'file is truncated'}]
    assert capfd.readouterr().err.splitlines() == [
        f'skipping {bad[0]}: empty file', f'skipping {bad[1]}: file is truncated',
        'skipped 2 of 5 images; see above']
    assert sum(len(X) for X, _ in load_image_folder(root, skip_bad_images=True)) == 3
    assert sum(len(X) for X, _ in load_pokemon(data_dir=root, skip_bad_images=True)) == 3
    with pytest.raises(DCGANError, match='empty.jpg: empty file'):
        load_pokemon(data_dir=root)  # off by default: the first bad image stops it


def test_skip_bad_images_with_every_image_bad_is_an_error(tmp_path, capfd):
    root = make_folder(tmp_path, {'a.png': b'', 'b.png': PNG[:30]})
    with pytest.raises(DCGANError, match=f'none of the 2 images in {root} can be read'):
        read_images(root, skip_bad_images=True)
    assert capfd.readouterr().err.splitlines()[-1] == 'skipped 2 of 2 images; see above'


@pytest.fixture(scope='module')
def corpus_runs(tmp_path_factory):
    """Real processes: the issue's folder (40 good PNGs, one cut in half) without the flag, and
    every hostile and odd file with --skip-bad-images, one epoch."""
    tmp = tmp_path_factory.mktemp('corpus')
    make_folder(tmp / 'issue', {**good_files(40), 'half.png': PNG[:len(PNG) // 2]})
    hostile = {name: content for name, content, _ in HOSTILE.values()}
    hostile[b'bad caf\xe9.png'] = PNG[:40]  # a name that is not UTF-8
    make_folder(tmp / 'all', {**good_files(8), **odd_files(), **hostile})
    results = run_all({
        'issue': train_cmd(tmp, 'issue', '--data-dir', tmp / 'issue', '--num-epochs', '1'),
        'skip': train_cmd(tmp, 'skip', '--data-dir', tmp / 'all', '--num-epochs', '1',
                          '--swd-samples', '0', '--skip-bad-images')})
    return tmp, hostile, results


def test_the_issues_folder_is_one_line_without_libpng(corpus_runs):
    tmp, _, results = corpus_runs
    r = results['issue']
    assert_one_line_error(r.returncode, r.stdout, r.stderr,
                          f': error: cannot read image {tmp}/issue/c/half.png: file is truncated')
    assert 'libpng' not in r.stderr


def test_skip_bad_images_trains_on_the_rest(corpus_runs):
    tmp, hostile, results = corpus_runs
    r = results['skip']
    assert r.returncode == 0, r.stderr
    total = 8 + len(odd_files()) + len(hostile)
    folder = os.path.join(str(tmp / 'all'), 'c')
    paths = sorted(os.path.join(folder, os.fsdecode(name)) for name in hostile)
    m = metrics(tmp / 'skip' / 'out')
    assert m['num_images'] == total - len(hostile) and len(m['epochs']) == 1
    assert [s['path'] for s in m['skipped_images']] == paths
    lines = r.stderr.splitlines()
    skip_lines = [line for line in lines if line.startswith('skipping ')]
    assert len(skip_lines) == len(hostile)
    for path, line in zip(paths, skip_lines):  # each named once, in order, with its reason
        printable = path.encode('utf-8', 'backslashreplace').decode()  # how stderr writes it
        assert line.startswith(f'skipping {printable}: ')
    assert f'skipped {len(hostile)} of {total} images; see above' in lines
    assert 'Traceback' not in r.stderr and 'libpng' not in r.stderr


def test_evaluate_takes_the_data_flags(tmp_path, capfd):
    from mxnet import np
    from d2l_dcgan import generator
    net_G = generator(8)
    net_G.initialize()
    net_G(np.zeros((1, 100, 1, 1)))
    net_G.save_parameters(str(tmp_path / 'net_G.params'))
    root = make_folder(tmp_path / 'images', {**good_files(4), 'half.png': PNG[:len(PNG) // 2]})
    argv = ['--params', str(tmp_path / 'net_G.params'), '--data-dir', root, '--device', 'cpu',
            '--num-samples', '4']
    capfd.readouterr()
    code = cli.evaluate_main(argv)
    out, err = capfd.readouterr()
    assert_one_line_error(code, out, err, 'half.png: file is truncated')
    assert cli.evaluate_main(argv + ['--skip-bad-images']) == 0
    out, err = capfd.readouterr()
    assert 'SWD x1e3 to the data (4 generated vs 4 real images' in out
    assert err.splitlines()[-1] == 'skipped 1 of 5 images; see above'


# --------------------------------------------------------------------- odd but valid images

GRAY16 = (onp.arange(64 * 64).reshape(64, 64) * 16 + 7).astype(onp.uint16)


def rgba_png():
    """RGBA with every alpha: it is dropped, not blended (MXNet's flag=1 and Pillow alike)."""
    rng = onp.random.default_rng(7)
    return saved(Image.fromarray(rng.integers(0, 256, (64, 64, 4), dtype=onp.uint8)), 'PNG')


def rotated_jpeg():
    img = Image.open(io.BytesIO(encode('PNG', (50, 30))))
    exif = img.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees to display; the chapter does not
    return saved(img, 'JPEG', exif=exif.tobytes())


def odd_files():
    """{file name: bytes} of valid images that are unusual in format, shape or name."""
    return {
        'gray16.png': saved(Image.fromarray(GRAY16), 'PNG'),
        'cmyk.jpg': encode('JPEG', (64, 64), mode='CMYK', quality=95),
        'palette-transparent.png': encode('PNG', (64, 64), mode='P', transparency=0),
        'rgba.png': rgba_png(),
        'wide.png': encode('PNG', (4000, 3)),
        'tall.png': encode('PNG', (3, 4000)),
        'UPPER.PNG': encode('PNG', seed=1), 'PHOTO.JPG': encode('JPEG', seed=2),
        'PHOTO.JPEG': encode('JPEG', seed=3),
        'progressive.jpg': encode('JPEG', progressive=True),
        'exif-rotated.jpg': rotated_jpeg(),
        'with spaces 01.png': encode('PNG', seed=4),
        b'caf\xe9 latin-1.png': encode('PNG', seed=5),  # not UTF-8
        'jpeg named.png': encode('JPEG', seed=6),
    }


def chapters_pixels(path):
    """The chapter's pipeline on one file: MXNet's imread (flag=1), then Resize(64)."""
    return gluon.data.vision.transforms.Resize(64)(image.imread(path, flag=1)).asnumpy()


@pytest.fixture(scope='module')
def odd_images(tmp_path_factory):
    """{file name: uint8 64x64x3 as read_images loads it} of every odd file, read together."""
    files = odd_files()
    root = make_folder(tmp_path_factory.mktemp('odd') / 'images', files)
    images, _, _ = read_images(root)
    names = sorted(os.fsdecode(name) for name in files)
    assert len(images) == len(names)  # none refused
    return root, dict(zip(names, images))


@pytest.mark.parametrize('name', [os.fsdecode(n) for n in odd_files()])
def test_odd_image_loads_with_the_chapters_pixels(odd_images, name, tmp_path):
    root, images = odd_images
    path = os.path.join(root, 'c', name)
    if not name.isascii():  # MXNet's imread takes UTF-8 names only: read a copy for it
        path = str(tmp_path / 'copy.png')
        with open(path, 'wb') as f:
            f.write(odd_files()[os.fsencode(name)])
    onp.testing.assert_array_equal(images[name], chapters_pixels(path))


def test_odd_images_mean_what_pillow_says(odd_images):
    """What those pixels are: 16-bit grey keeps its high byte, CMYK is converted as Pillow
    does (within rounding), palette and alpha give their colours."""
    _, images = odd_images
    files = odd_files()
    onp.testing.assert_array_equal(images['gray16.png'][..., 0], GRAY16 >> 8)
    for name, tolerance in (('cmyk.jpg', 2), ('palette-transparent.png', 0), ('rgba.png', 0)):
        with Image.open(io.BytesIO(files[name])) as img:
            rgb = onp.asarray(img.convert('RGB')).astype(int)
        onp.testing.assert_allclose(images[name], rgb, atol=tolerance, err_msg=name)


def test_other_extensions_are_not_read(tmp_path):
    """As Gluon's ImageFolderDataset: .gif, .webp, .bmp, .tif are left alone, not decoded."""
    files = {'a.png': encode('PNG'), 'b.gif': encode('GIF'), 'c.webp': encode('WEBP'),
             'd.bmp': encode('BMP'), 'e.tif': encode('TIFF')}
    images, _, _ = read_images(make_folder(tmp_path, files))
    assert len(images) == 1
