"""Decode once per machine, on every core: worker processes give the one-process pixels; the
decoded-image cache is reused only while the folder is unchanged, is rebuilt when damaged, and
several processes at once decode a folder once."""
import json
import os
import subprocess
import sys

import numpy as onp
import pytest
from PIL import Image

from d2l_dcgan import DCGANError, cli, make_sprites
from d2l_dcgan import data as data_module
from d2l_dcgan import decode
from d2l_dcgan.data import read_images
from test_cli import ENV, REPO_ROOT
from timeouts import limit


@pytest.fixture
def folder(tmp_path):
    """200 sprites (4 classes): more than 3 worker chunks."""
    return make_sprites(str(tmp_path / 'sprites'), num_images=200)


def entries(cache):
    decoded = os.path.join(cache, 'decoded')
    return sorted(f for f in os.listdir(decoded) if f.endswith(('.npy', '.json')))


def one_by_one(root):
    """The pixels as read one image at a time, in one process, in listing order."""
    items, _ = data_module.list_images(root)
    return onp.stack([decode.read_one(p, 64) for p, _ in items])


def test_worker_processes_give_the_pixels_of_one_process(folder):
    want = one_by_one(folder)
    for workers in (1, 2, 3):
        images, labels, classes = read_images(folder, workers=workers)
        assert images.shape == (200, 64, 64, 3) and images.dtype == onp.uint8
        assert (images == want).all(), workers
        assert labels.tolist() == [i // 50 for i in range(200)]  # 4 classes of 50, in order


@pytest.mark.parametrize('cached', [False, True])
def test_a_bad_image_among_workers_is_the_one_line_error_or_skipped(folder, tmp_path, capfd,
                                                                    cached):
    bad = os.path.join(folder, 'tall', 'zz-bad.png')  # in the last of 4 chunks
    with open(bad, 'wb') as f:
        f.write(b'not a png')
    cache = str(tmp_path / 'cache') if cached else None
    with pytest.raises(DCGANError, match=rf'^cannot read image {bad}: not a PNG or JPEG file'):
        read_images(folder, workers=2, cache_dir=cache)
    images, labels, _ = read_images(folder, workers=2, cache_dir=cache, skip_bad_images=True)
    assert (images == one_by_one_good(folder)).all() and len(labels) == 200
    assert capfd.readouterr().err.splitlines()[-1] == 'skipped 1 of 201 images; see above'


def one_by_one_good(root):
    items, _ = data_module.list_images(root)
    return onp.stack([decode.read_one(p, 64) for p, _ in items
                      if os.path.basename(p) != 'zz-bad.png'])


def test_a_second_read_maps_the_cache_without_decoding(folder, tmp_path, monkeypatch):
    cache, want = tmp_path / 'cache', one_by_one(folder)
    first, labels, classes = read_images(folder, cache_dir=str(cache))
    assert len(entries(cache)) == 2  # images-KEY.npy and its index
    monkeypatch.setattr(decode, 'read_one', lambda *a, **k: pytest.fail('decoded again'))
    again, labels2, classes2 = read_images(folder, cache_dir=str(cache))
    assert isinstance(again, onp.memmap) and not again.flags.writeable  # mapped read-only
    assert (first == want).all() and (again == want).all()
    assert labels2.tolist() == labels.tolist() and classes2 == classes


def test_a_killed_builders_temporary_files_are_removed_by_the_next(folder, tmp_path):
    cache = str(tmp_path / 'cache')
    read_images(folder, cache_dir=cache)
    decoded = os.path.join(cache, 'decoded')
    key = entries(cache)[0][len('images-'):-len('.json')]
    leftovers = [f'images-{key}.npy.tmp-999999', f'images-{key}-packed.npy.tmp-999999',
                 f'images-{key}.json.tmp-999999']
    for name in entries(cache):  # the killed run never committed: no entry, its files left
        os.remove(os.path.join(decoded, name))
    for name in leftovers:
        with open(os.path.join(decoded, name), 'wb') as f:
            f.write(b'half an entry')
    read_images(folder, cache_dir=cache)
    assert sorted(f for f in os.listdir(decoded) if not f.endswith('.lock')) == \
        [f'images-{key}.json', f'images-{key}.npy']


@pytest.mark.parametrize('change', ['changed', 'added', 'removed', 'other size'])
def test_a_changed_folder_is_decoded_again(folder, tmp_path, change):
    cache = str(tmp_path / 'cache')
    read_images(folder, cache_dir=cache)
    first = entries(cache)
    path = os.path.join(folder, 'round', sorted(os.listdir(os.path.join(folder, 'round')))[0])
    size = 32 if change == 'other size' else 64
    if change == 'changed':  # same name, other pixels, another modification time
        Image.new('RGB', (64, 64), (200, 10, 10)).save(path)
        os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    elif change == 'added':
        Image.new('RGB', (64, 64), (10, 200, 10)).save(os.path.join(folder, 'round', 'new.png'))
    elif change == 'removed':
        os.remove(path)
    images, labels, _ = read_images(folder, size=size, cache_dir=cache)
    assert entries(cache) != first  # a new entry
    assert (images == onp.stack([decode.read_one(p, size) for p, _ in
                                 data_module.list_images(folder)[0]])).all()
    assert len(images) == {'added': 201, 'removed': 199}.get(change, 200)
    # a folder's older entry at the same size is removed; another size keeps its own
    assert len(entries(cache)) == (4 if change == 'other size' else 2)


@pytest.mark.parametrize('damage', ['truncated', 'a changed byte', 'an unreadable index'])
def test_a_damaged_cache_is_said_and_rebuilt(folder, tmp_path, capfd, damage):
    cache = str(tmp_path / 'cache')
    want, _, _ = read_images(folder, cache_dir=cache)
    want = onp.array(want)
    npy, index = (os.path.join(cache, 'decoded', f) for f in entries(cache))
    if damage == 'truncated':
        os.truncate(npy, os.path.getsize(npy) // 2)
    elif damage == 'a changed byte':
        with open(npy, 'r+b') as f:
            f.seek(-1000, os.SEEK_END)
            byte = f.read(1)
            f.seek(-1000, os.SEEK_END)
            f.write(bytes([byte[0] ^ 0xFF]))
    else:
        with open(index, 'w') as f:
            f.write('{"half')
    capfd.readouterr()
    images, _, _ = read_images(folder, cache_dir=cache)
    err = capfd.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith('decoded-image cache: ') and \
        err[0].endswith('; decoding the images again'), err
    assert (images == want).all()  # never the damaged pixels
    assert read_images(folder, cache_dir=cache)[0].shape == want.shape  # and whole again
    assert capfd.readouterr().err == ''


def test_bad_images_with_the_cache(tmp_path, capfd):
    root = tmp_path / 'images' / 'c'
    root.mkdir(parents=True)
    for i in range(3):
        Image.new('RGB', (64, 64), (i * 80, 0, 0)).save(root / f'{i}.png')
    (root / 'bad.png').write_bytes(b'not a png')
    cache = str(tmp_path / 'cache')
    with pytest.raises(DCGANError, match=r'bad\.png: not a PNG or JPEG file'):
        read_images(str(tmp_path / 'images'), cache_dir=cache)
    assert entries(cache) == []  # nothing cached of a folder that stopped
    for _ in range(2):  # decoded, then from the cache: the same images and the same lines
        skipped = []
        images, _, _ = read_images(str(tmp_path / 'images'), cache_dir=cache,
                                   skip_bad_images=True, skipped=skipped)
        assert len(images) == 3 and [s['path'] for s in skipped] == [str(root / 'bad.png')]
        err = capfd.readouterr().err.splitlines()
        assert err[0].startswith(f'skipping {root / "bad.png"}: ') and \
            err[1] == 'skipped 1 of 4 images; see above'


def test_an_unwritable_cache_decodes_in_memory(folder, tmp_path, capfd):
    cache = tmp_path / 'cache'
    cache.write_text('a file where the cache folder would be')
    images, _, _ = read_images(folder, cache_dir=str(cache))
    assert (images == one_by_one(folder)).all()
    assert capfd.readouterr().err == (f'decoded-image cache: cannot write to {cache}/decoded; '
                                      'decoding in memory\n')


FOUR = """
import hashlib, sys
import d2l_dcgan
from d2l_dcgan import data, decode
decode_into = decode.Folder.decode_into
def counted(*args, **kwargs):
    print('DECODING', flush=True)
    return decode_into(*args, **kwargs)
decode.Folder.decode_into = counted
images, labels, _ = data.read_images(sys.argv[1], cache_dir=sys.argv[2])
print('PIXELS', hashlib.sha256(images.tobytes()).hexdigest(), len(images))
"""


def test_four_processes_at_once_decode_a_folder_once(folder, tmp_path):
    cache = str(tmp_path / 'cache')
    runs = [subprocess.Popen([sys.executable, '-c', FOUR, folder, cache], cwd=REPO_ROOT,
                             env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(4)]
    outs = [r.communicate(timeout=limit(240)) for r in runs]
    assert [r.returncode for r in runs] == [0] * 4, [e[-2000:] for _, e in outs]
    assert sum(out.count('DECODING') for out, _ in outs) == 1
    pixels = {next(l for l in out.splitlines() if l.startswith('PIXELS')) for out, _ in outs}
    assert len(pixels) == 1 and pixels.pop().endswith(' 200')  # identical pixels in all four
    waiting = [l for _, err in outs for l in err.splitlines()]
    assert all(l.startswith('waiting for another run') and 'that is decoding' in l
               for l in waiting), waiting


def test_no_image_cache_writes_none(sprites_root, tmp_path, capfd):
    out, cache = tmp_path / 'run', tmp_path / 'cache'
    code = cli.train_main(['--data-dir', sprites_root, '--cache-dir', str(cache), '--out-dir',
                           str(out), '--num-epochs', '1', '--n-G', '8', '--n-D', '8',
                           '--batch-size', '16', '--no-progress', '--device', 'cpu',
                           '--swd-samples', '16', '--no-image-cache'])
    assert code == 0, capfd.readouterr().err
    assert not (cache / 'decoded').exists()
    code = cli.train_main(['--resume', str(out), '--num-epochs', '2'])  # the default: cached
    assert code == 0, capfd.readouterr().err
    assert len(entries(cache)) == 2
    with open(out / 'metrics.json') as f:
        assert len(json.load(f)['epochs']) == 2
