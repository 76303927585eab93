"""The data pipeline: sprites, image folders as the chapter's DataLoader, download and extract."""
import functools
import hashlib
import http.server
import io
import os
import re
import subprocess
import sys
import threading
import time
import zipfile

import numpy as onp
import pytest
from PIL import Image

import d2l_dcgan
from d2l import mxnet as d2l
from d2l_dcgan import (DCGANError, download, download_extract, load_image_folder, load_pokemon,
                       make_sprites, read_images)
from d2l_dcgan import sprites as sprites_module
from mxnet import gluon
from timeouts import limit


def pixels(path):
    with Image.open(path) as img:
        return onp.asarray(img)


def sha1_bytes(data):
    return hashlib.sha1(data).hexdigest()


def listing(root):
    """Every file under `root` as a sorted list of paths relative to it."""
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, files in os.walk(root) for f in files)


# ---------------------------------------------------------------------------- make_sprites

def test_make_sprites_layout(sprites_root):
    assert sorted(os.listdir(sprites_root)) == sorted(sprites_module.KINDS)
    files = listing(sprites_root)
    assert len(files) == 32
    for kind in sprites_module.KINDS:
        assert len(os.listdir(os.path.join(sprites_root, kind))) == 8
    for f in files:
        kind, name = f.split(os.sep)
        assert name.endswith('.png') and name[:-4].isdigit()
        with Image.open(os.path.join(sprites_root, f)) as img:
            assert img.size == (64, 64) and img.mode == 'RGB'
    # the marker sits beside root, not in it: ImageFolderDataset would warn about a stray file
    assert os.path.isfile(os.path.normpath(sprites_root) + '.json')


def test_make_sprites_is_deterministic(tmp_path):
    a = make_sprites(str(tmp_path / 'a'), num_images=8, seed=0)
    b = make_sprites(str(tmp_path / 'b'), num_images=8, seed=0)
    c = make_sprites(str(tmp_path / 'c'), num_images=8, seed=1)
    files = listing(a)
    assert files == listing(b) == listing(c)
    for f in files:
        onp.testing.assert_array_equal(pixels(os.path.join(a, f)), pixels(os.path.join(b, f)))
    assert any(not onp.array_equal(pixels(os.path.join(a, f)), pixels(os.path.join(c, f)))
               for f in files)


def test_make_sprites_reuses_an_existing_set(tmp_path):
    root = make_sprites(str(tmp_path / 's'), num_images=8)
    mtimes = {f: os.stat(os.path.join(root, f)).st_mtime_ns for f in listing(root)}
    assert make_sprites(root, num_images=8) == root
    assert {f: os.stat(os.path.join(root, f)).st_mtime_ns for f in listing(root)} == mtimes


def test_make_sprites_with_other_settings_leaves_no_stale_images(tmp_path):
    root = make_sprites(str(tmp_path / 's'), num_images=8)
    make_sprites(root, num_images=4)
    assert len(listing(root)) == 4
    images, _, _ = read_images(root)
    assert images.shape == (4, 64, 64, 3)


def test_make_sprites_interrupted_is_not_taken_for_done(tmp_path, monkeypatch):
    """A rewrite that dies half-way must not leave a set that passes for the old settings."""
    fresh = make_sprites(str(tmp_path / 'fresh'), num_images=8, seed=0)
    root = make_sprites(str(tmp_path / 's'), num_images=8, seed=0)
    draw, calls = sprites_module.draw_sprite, []

    def flaky_draw(*args, **kwargs):
        calls.append(1)
        if len(calls) > 3:
            raise KeyboardInterrupt
        return draw(*args, **kwargs)

    monkeypatch.setattr(sprites_module, 'draw_sprite', flaky_draw)
    with pytest.raises(KeyboardInterrupt):
        make_sprites(root, num_images=8, seed=1)
    monkeypatch.setattr(sprites_module, 'draw_sprite', draw)
    make_sprites(root, num_images=8, seed=0)
    for f in listing(fresh):
        onp.testing.assert_array_equal(pixels(os.path.join(root, f)),
                                       pixels(os.path.join(fresh, f)))


def test_make_sprites_with_a_truncated_marker_draws_again(tmp_path):
    root = make_sprites(str(tmp_path / 's'), num_images=4)
    with open(root + '.json', 'w') as f:
        f.write('{"num_images": 4, "se')
    os.remove(os.path.join(root, 'round', '00000.png'))
    assert make_sprites(root, num_images=4) == root
    assert len(listing(root)) == 4


# ------------------------------------------------------------ read_images, load_image_folder

def test_read_images_shapes(image_folder):
    images, labels, synsets = read_images(str(image_folder))
    assert images.shape == (6, 64, 64, 3) and images.dtype == onp.uint8
    assert labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert synsets == ['a', 'b']


def test_load_image_folder_batches(sprites_root):
    data_iter = load_image_folder(sprites_root, batch_size=12, shuffle=False)
    shapes = []
    for X, y in data_iter:
        shapes.append(X.shape)
        assert X.dtype == onp.float32
        assert -1 <= float(X.min()) and float(X.max()) <= 1
        assert y.shape == (X.shape[0],)
    assert shapes == [(12, 3, 64, 64), (12, 3, 64, 64), (8, 3, 64, 64)]


@pytest.mark.parametrize('batch_size', [0, -1, 2.5])
def test_load_image_folder_rejects_bad_batch_size(sprites_root, batch_size):
    with pytest.raises(DCGANError, match='batch_size'):
        load_image_folder(sprites_root, batch_size=batch_size)


def chapter_pipeline(root):
    """The chapter's own dataset: ImageFolderDataset, Resize(64), ToTensor, Normalize(0.5, 0.5)."""
    T = gluon.data.vision.transforms
    return gluon.data.vision.datasets.ImageFolderDataset(root).transform_first(
        T.Compose([T.Resize(64), T.ToTensor(), T.Normalize(0.5, 0.5)]))


def test_same_values_as_the_chapters_pipeline(image_folder):
    root = str(image_folder)
    chapter = chapter_pipeline(root)
    ours = [(X.asnumpy(), y.asnumpy()) for X, y in load_image_folder(root, batch_size=4,
                                                                    shuffle=False)]
    X_ours = onp.concatenate([X for X, _ in ours])
    y_ours = onp.concatenate([y for _, y in ours])
    assert len(chapter) == len(X_ours) == 6
    for i in range(len(chapter)):
        X, y = chapter[i]
        assert X.shape == (3, 64, 64)
        onp.testing.assert_allclose(X_ours[i], X.asnumpy(), rtol=0, atol=1e-6)
        assert y_ours[i] == y


SOLID = {  # file name: (how to write it, the RGB colour it must load as, tolerance)
    'rgba.png': (lambda p: Image.new('RGBA', (70, 70), (10, 200, 30, 255)).save(p),
                 (10, 200, 30), 0),
    'palette.png': (lambda p: Image.new('RGB', (70, 70), (200, 40, 90)).convert(
        'P', palette=Image.Palette.ADAPTIVE).save(p), (200, 40, 90), 0),
    'gray.png': (lambda p: Image.new('L', (70, 70), 77).save(p), (77, 77, 77), 0),
    'photo.jpg': (lambda p: Image.new('RGB', (70, 70), (30, 60, 220)).save(p, quality=95),
                  (30, 60, 220), 3),
}


@pytest.mark.parametrize('name', list(SOLID))
def test_image_modes_load_as_rgb(tmp_path, name):
    write, colour, tol = SOLID[name]
    (tmp_path / 'root' / 'c').mkdir(parents=True)
    path = tmp_path / 'root' / 'c' / name
    write(path)
    with Image.open(path) as img:
        assert img.mode == {'rgba.png': 'RGBA', 'palette.png': 'P', 'gray.png': 'L',
                            'photo.jpg': 'RGB'}[name]
    images, _, _ = read_images(str(tmp_path / 'root'))
    assert images.shape == (1, 64, 64, 3)
    onp.testing.assert_allclose(images[0].reshape(-1, 3).astype(int),
                                onp.broadcast_to(colour, (64 * 64, 3)), atol=tol)


# ------------------------------------------------------------------------------ bad inputs

def test_missing_data_dir(tmp_path):
    with pytest.raises(DCGANError, match='does not exist'):
        read_images(str(tmp_path / 'nope'))


def test_data_dir_is_a_file(tmp_path):
    (tmp_path / 'file.png').write_bytes(b'')
    with pytest.raises(DCGANError, match='not a directory'):
        read_images(str(tmp_path / 'file.png'))


@pytest.mark.parametrize('layout', ['empty', 'empty sub-folder', 'no images in sub-folder'])
def test_no_images(tmp_path, layout):
    root = tmp_path / 'root'
    root.mkdir()
    if layout != 'empty':
        (root / 'c').mkdir()
    if layout == 'no images in sub-folder':
        (root / 'c' / 'notes.txt').write_text('not an image')
    with pytest.raises(DCGANError, match='no PNG/JPEG images') as e:
        load_image_folder(str(root))
    assert 'directly in it' not in str(e.value)  # that hint is for loose images only


def test_images_without_sub_folders_get_a_hint(tmp_path):
    for i in range(2):
        Image.new('RGB', (64, 64)).save(tmp_path / f'{i}.png')
    with pytest.raises(DCGANError, match='found 2 images directly in it: move them into a '
                                         'sub-folder'):
        load_image_folder(str(tmp_path))


@pytest.mark.parametrize('name, content', [('bad.png', os.urandom(512)), ('empty.jpg', b'')],
                         ids=['corrupt png', 'zero-byte jpg'])
def test_unreadable_image_is_named(tmp_path, name, content):
    root = tmp_path / 'root'
    (root / 'c').mkdir(parents=True)
    Image.new('RGB', (64, 64)).save(root / 'c' / 'good.png')
    (root / 'c' / name).write_bytes(content)
    with pytest.raises(DCGANError, match='cannot read image') as e:
        load_image_folder(str(root))
    assert str(root / 'c' / name) in str(e.value)


# -------------------------------------------------------------------------------- download

@pytest.fixture
def http_server(tmp_path):
    """A quiet HTTP server on 127.0.0.1 in a thread, serving tmp_path/www; yields its base URL."""
    www = tmp_path / 'www'
    www.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ('127.0.0.1', 0), functools.partial(Handler, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{server.server_port}'
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def fake_source(tmp_path, monkeypatch):
    """A local file registered as d2l.DATA_HUB['fakezip'] (with its right SHA-1)."""
    src = tmp_path / 'src' / 'fake.zip'
    src.parent.mkdir()
    src.write_bytes(b'not really a zip\n' * 1000)
    monkeypatch.setitem(d2l.DATA_HUB, 'fakezip', ('file://' + str(src), sha1_bytes(
        src.read_bytes())))
    return src


def test_download_verifies_and_caches(tmp_path, fake_source):
    cache = tmp_path / 'cache'
    path = download('fakezip', str(cache))
    assert path == str(cache / 'fake.zip')
    assert (cache / 'fake.zip').read_bytes() == fake_source.read_bytes()
    assert sorted(os.listdir(cache)) == ['fake.lock', 'fake.zip']
    fake_source.unlink()  # the second call must not need the source
    assert download('fakezip', str(cache)) == path


def test_download_replaces_a_cached_file_with_the_wrong_sha1(tmp_path, fake_source):
    cache = tmp_path / 'cache'
    cache.mkdir()
    (cache / 'fake.zip').write_bytes(b'truncated')
    download('fakezip', str(cache))
    assert (cache / 'fake.zip').read_bytes() == fake_source.read_bytes()


def test_download_with_the_wrong_sha1_keeps_nothing(tmp_path, fake_source, monkeypatch):
    monkeypatch.setitem(d2l.DATA_HUB, 'fakezip', ('file://' + str(fake_source), '0' * 40))
    cache = tmp_path / 'cache'
    with pytest.raises(DCGANError, match='SHA-1'):
        download('fakezip', str(cache))
    assert os.listdir(cache) == ['fake.lock']


@pytest.mark.parametrize('where', ['missing file', 'refused connection'])
def test_download_failure_says_what_to_do(tmp_path, monkeypatch, where):
    url = ('file://' + str(tmp_path / 'nope' / 'pokemon.zip') if where == 'missing file'
           else 'http://127.0.0.1:9/pokemon.zip')  # nothing listens on port 9 (discard)
    monkeypatch.setitem(d2l.DATA_HUB, 'fakezip', (url, '1' * 40))
    cache = tmp_path / 'cache'
    with pytest.raises(DCGANError) as e:
        download('fakezip', str(cache))
    message = str(e.value)
    assert 'pokemon.zip' in message and str(cache) in message and 'by hand' in message
    assert message.startswith('argument cache_dir: ') and 'image folder as data_dir' in message
    assert '--' not in message  # download() is called from Python: no flags
    assert os.listdir(cache) == ['pokemon.lock']


def test_download_http_404(tmp_path, monkeypatch, http_server):
    monkeypatch.setitem(d2l.DATA_HUB, 'fakezip', (http_server + '/pokemon.zip', '1' * 40))
    cache = tmp_path / 'cache'
    with pytest.raises(DCGANError, match='HTTP 404'):
        download('fakezip', str(cache))
    assert os.listdir(cache) == ['pokemon.lock']


def test_download_over_http(tmp_path, monkeypatch, http_server):
    data = os.urandom(3 << 20)  # several read chunks
    (tmp_path / 'www' / 'blob.bin').write_bytes(data)
    monkeypatch.setitem(d2l.DATA_HUB, 'fakezip', (http_server + '/blob.bin', sha1_bytes(data)))
    path = download('fakezip', str(tmp_path / 'cache'))
    with open(path, 'rb') as f:
        assert f.read() == data
    assert sorted(os.listdir(tmp_path / 'cache')) == ['blob.bin', 'blob.lock']


# ------------------------------------------------------------------------ download_extract

def write_zip(path, entries):
    """A zip at `path` holding `entries` {name: bytes}; returns its SHA-1."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, 'w') as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return sha1_bytes(path.read_bytes())


def png_bytes(colour, size=(80, 80)):
    buf = io.BytesIO()
    Image.new('RGB', size, colour).save(buf, format='PNG')
    return buf.getvalue()


POKEMON_ENTRIES = {f'pokemon/{cls}/{i}.png': png_bytes((40 * i, 100, 200 if cls == 'b' else 0))
                   for cls in ('a', 'b') for i in range(3)}


@pytest.fixture
def fake_pokemon(tmp_path, monkeypatch):
    """A small pokemon.zip registered as d2l.DATA_HUB['pokemon']; returns the cache dir."""
    src = tmp_path / 'src' / 'pokemon.zip'
    monkeypatch.setitem(d2l.DATA_HUB, 'pokemon', ('file://' + str(src),
                                                  write_zip(src, POKEMON_ENTRIES)))
    return tmp_path / 'cache'


def test_download_extract_and_load_pokemon(fake_pokemon):
    cache = fake_pokemon
    data_dir = download_extract('pokemon', str(cache))
    assert data_dir == str(cache / 'pokemon')
    assert listing(data_dir) == sorted(os.path.join(*name.split('/')[1:])
                                       for name in POKEMON_ENTRIES)
    assert sorted(os.listdir(cache)) == ['pokemon', 'pokemon.extracted', 'pokemon.lock',
                                         'pokemon.zip']
    batches = list(load_pokemon(batch_size=4, data_dir=None, cache_dir=str(cache)))
    assert [X.shape for X, _ in batches] == [(4, 3, 64, 64), (2, 3, 64, 64)]


def test_download_extract_does_not_extract_twice(fake_pokemon):
    cache = fake_pokemon
    data_dir = download_extract('pokemon', str(cache))
    first = os.path.join(data_dir, 'a', '0.png')
    mtime = os.stat(first).st_mtime_ns
    (cache / 'pokemon' / 'mine.txt').write_text('a re-extraction would delete me')
    assert download_extract('pokemon', str(cache)) == data_dir
    assert (cache / 'pokemon' / 'mine.txt').exists()
    assert os.stat(first).st_mtime_ns == mtime


def test_download_extract_redoes_an_unfinished_extraction(fake_pokemon):
    cache = fake_pokemon
    download_extract('pokemon', str(cache))
    (cache / 'pokemon' / 'mine.txt').write_text('stale')
    os.remove(cache / 'pokemon.extracted')  # as if extraction had been interrupted
    download_extract('pokemon', str(cache))
    assert not (cache / 'pokemon' / 'mine.txt').exists()
    assert len(listing(cache / 'pokemon')) == len(POKEMON_ENTRIES)


def test_download_extract_new_version_replaces_the_old(fake_pokemon, tmp_path, monkeypatch):
    cache = fake_pokemon
    download_extract('pokemon', str(cache))
    src = tmp_path / 'src2' / 'pokemon.zip'
    sha1 = write_zip(src, {'pokemon/c/0.png': png_bytes((1, 2, 3))})
    monkeypatch.setitem(d2l.DATA_HUB, 'pokemon', ('file://' + str(src), sha1))
    data_dir = download_extract('pokemon', str(cache))
    assert listing(data_dir) == [os.path.join('c', '0.png')]


@pytest.mark.parametrize('bad', ['../evil.txt', '../../evil.txt', 'absolute', 'symlink'])
def test_download_extract_refuses_entries_outside(tmp_path, monkeypatch, bad):
    cache = tmp_path / 'cache'
    src = tmp_path / 'src' / 'pokemon.zip'
    src.parent.mkdir()
    outside = tmp_path / 'abs_evil.txt'
    with zipfile.ZipFile(src, 'w') as zf:
        zf.writestr('pokemon/a/0.png', png_bytes((0, 0, 0)))
        if bad == 'absolute':
            zf.writestr(str(outside), b'evil')
        elif bad == 'symlink':
            link = zipfile.ZipInfo('pokemon/a/link')
            link.external_attr = 0o120777 << 16
            zf.writestr(link, str(outside))
        else:
            zf.writestr(bad, b'evil')
    monkeypatch.setitem(d2l.DATA_HUB, 'pokemon', ('file://' + str(src),
                                                  sha1_bytes(src.read_bytes())))
    with pytest.raises(DCGANError, match='outside'):
        download_extract('pokemon', str(cache))
    # no pokemon/, marker, temp folder
    assert sorted(os.listdir(cache)) == ['pokemon.lock', 'pokemon.zip']
    assert sorted(os.listdir(tmp_path)) == ['cache', 'src']
    assert not outside.exists()


def test_download_extract_of_a_non_zip(tmp_path, monkeypatch):
    src = tmp_path / 'src' / 'pokemon.zip'
    src.parent.mkdir()
    src.write_bytes(b'<html>a login page</html>')
    monkeypatch.setitem(d2l.DATA_HUB, 'pokemon', ('file://' + str(src),
                                                  sha1_bytes(src.read_bytes())))
    with pytest.raises(DCGANError, match='not a valid zip'):
        download_extract('pokemon', str(tmp_path / 'cache'))
    assert sorted(os.listdir(tmp_path / 'cache')) == ['pokemon.lock', 'pokemon.zip']


def test_download_extract_of_a_zip_without_the_folder(tmp_path, monkeypatch):
    src = tmp_path / 'src' / 'pokemon.zip'
    sha1 = write_zip(src, {'images/a/0.png': png_bytes((0, 0, 0))})
    monkeypatch.setitem(d2l.DATA_HUB, 'pokemon', ('file://' + str(src), sha1))
    with pytest.raises(DCGANError, match='no folder pokemon/'):
        download_extract('pokemon', str(tmp_path / 'cache'))


def test_the_real_pokemon_entry():
    url, sha1 = d2l.DATA_HUB['pokemon']
    assert url.startswith(d2l.DATA_URL) and url.endswith('/pokemon.zip')
    assert sha1 == 'c065c0e2593b8b161a2d7873e42418bf6a21106c' == d2l_dcgan.data.POKEMON_SHA1


def test_make_sprites_in_several_processes_at_once(tmp_path):
    """Runs sharing a --cache-dir draw the set once and never read it half drawn."""
    import subprocess
    import sys
    import time
    root = tmp_path / 'sprites'
    code = ('import sys, d2l_dcgan.sprites as s, numpy as np, PIL.Image as I, glob; '
            's.make_sprites(sys.argv[1], num_images=400); '
            'paths = sorted(glob.glob(sys.argv[1] + "/*/*.png")); '
            'print(len(paths), sum(int(np.asarray(I.open(p)).sum()) for p in paths))')
    # started one after another, so that later ones find the set mid-drawing
    procs = []
    for _ in range(3):
        procs.append(subprocess.Popen([sys.executable, '-c', code, str(root)],
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
        time.sleep(0.4)
    sums = [p.communicate(timeout=limit(300))[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(set(sums)) == 1 and sums[0].startswith('400 '), sums
    assert len(list(root.glob('*/*.png'))) == 400


# ------------------------------------------------------------- runs sharing one cache folder

def zip_bytes(entries):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


# the six images and 3 MiB that is not an image: a download is written 1 MiB at a time
SLOW_ENTRIES = {**POKEMON_ENTRIES,
                'pokemon/a/padding.dat': onp.random.default_rng(0).bytes(3 << 20)}
SLOW_LISTING = sorted(os.path.join(*name.split('/')[1:]) for name in SLOW_ENTRIES)


@pytest.fixture
def slow_pokemon(tmp_path, monkeypatch):
    """A pokemon.zip of SLOW_ENTRIES served from 127.0.0.1 in 20 pieces over `server.seconds`
    (2 s), registered as d2l.DATA_HUB['pokemon']; yields the server (its .url, .sha1 and .gets,
    the paths asked for). A client that goes away ends its response; teardown stops it."""
    body = zip_bytes(SLOW_ENTRIES)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.server.gets.append(self.path)
            self.send_response(200)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            piece = -(-len(body) // 20)
            try:
                for i in range(0, len(body), piece):
                    self.wfile.write(body[i:i + piece])
                    self.wfile.flush()
                    time.sleep(self.server.seconds / 20)
            except (BrokenPipeError, ConnectionResetError):  # a client killed mid-download
                pass

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    server.daemon_threads = True
    server.gets, server.seconds, server.sha1 = [], 2.0, sha1_bytes(body)
    server.url = f'http://127.0.0.1:{server.server_port}/pokemon.zip'
    monkeypatch.setitem(d2l.DATA_HUB, 'pokemon', (server.url, server.sha1))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


# a run in its own process: d2l.DATA_HUB['pokemon'] pointed at the server, then `code`
RUN = ('import sys, os, time, zipfile\n'
       'import d2l_dcgan\n'
       'from d2l import mxnet as d2l\n'
       'url, sha1, cache = sys.argv[1:4]\n'
       "d2l.DATA_HUB['pokemon'] = (url, sha1)\n")


@pytest.fixture
def start_run(slow_pokemon):
    """start_run(cache, code, *args): a run in its own process; any left are killed after."""
    runs = []

    def start(cache, code, *args):
        runs.append(subprocess.Popen(
            [sys.executable, '-c', RUN + code, slow_pokemon.url, slow_pokemon.sha1, str(cache),
             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        return runs[-1]
    yield start
    for run in runs:
        if run.poll() is None:
            run.kill()
        run.communicate()


def wait_for(run, what, timeout=limit(60)):
    """Poll `what()` until it is true while `run` lives; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not what():
        assert run.poll() is None, run.communicate()[1][-2000:]
        assert time.monotonic() < deadline, 'timed out'
        time.sleep(0.02)


def cache_entries(cache):
    return sorted(os.listdir(cache))


DONE = ['pokemon', 'pokemon.extracted', 'pokemon.lock', 'pokemon.zip']


def test_four_runs_sharing_one_cache_all_load_the_images(tmp_path, slow_pokemon, start_run):
    """A seed sweep: four runs at once (released together once imported), one download."""
    cache, ready = tmp_path / 'cache', tmp_path / 'ready'
    ready.mkdir()
    code = ('open(os.path.join(sys.argv[4], str(os.getpid())), "w").close()\n'
            f'deadline = time.time() + {limit(60)}\n'
            'while len(os.listdir(sys.argv[4])) < 4 and time.time() < deadline:\n'
            '    time.sleep(0.01)\n'
            'X = [X for X, _ in d2l_dcgan.load_pokemon(batch_size=4, cache_dir=cache,'
            ' shuffle=False)]\n'
            'print("LOADED", sum(len(x) for x in X), float(sum(x.sum() for x in X)))\n')
    runs = [start_run(cache, code, str(ready)) for _ in range(4)]
    outs = [r.communicate(timeout=limit(120)) for r in runs]
    assert [r.returncode for r in runs] == [0] * 4, [err[-2000:] for _, err in outs]
    loaded = [next(l for l in out.splitlines() if l.startswith('LOADED')) for out, _ in outs]
    assert len(set(loaded)) == 1 and loaded[0].startswith('LOADED 6 '), loaded
    assert slow_pokemon.gets == ['/pokemon.zip']  # one run downloaded; the others waited
    waits = [[l for l in err.splitlines() if l.startswith('waiting for another run')
              and 'preparing pokemon' in l] for _, err in outs]
    assert sorted(len(w) for w in waits) == [0, 1, 1, 1], waits
    downloader = str(runs[[len(w) for w in waits].index(0)].pid)
    assert all(w == [f'waiting for another run (pid {downloader}) that is preparing pokemon '
                     f'in {cache} ...'] for w in waits if w)
    # no .part file, no temporary folder; the images decoded once, for all four
    assert cache_entries(cache) == sorted(DONE + ['decoded'])
    assert len([f for f in os.listdir(cache / 'decoded') if f.endswith('.npy')]) == 1


def test_a_download_killed_mid_way_is_cleaned_up_by_the_next_run(tmp_path, slow_pokemon,
                                                                 start_run):
    cache = tmp_path / 'cache'
    run = start_run(cache, 'd2l_dcgan.download_extract("pokemon", cache)\n')
    part = cache / f'pokemon.zip.part-{run.pid}'
    wait_for(run, lambda: part.exists() and part.stat().st_size > 0)
    run.kill()
    run.communicate(timeout=limit(60))
    assert 0 < part.stat().st_size < 3 << 20
    slow_pokemon.seconds = 0
    assert listing(download_extract('pokemon', str(cache))) == SLOW_LISTING
    assert cache_entries(cache) == DONE


def test_an_extraction_killed_mid_way_is_redone_by_the_next_run(tmp_path, slow_pokemon,
                                                                start_run):
    cache = tmp_path / 'cache'
    slow_pokemon.seconds = 0
    code = ('extract = zipfile.ZipFile._extract_member\n'  # slowed down, to be caught at it
            'def slow(*args):\n'
            '    time.sleep(0.3)\n'
            '    return extract(*args)\n'
            'zipfile.ZipFile._extract_member = slow\n'
            'd2l_dcgan.download_extract("pokemon", cache)\n')
    run = start_run(cache, code)
    tmp = cache / f'pokemon.tmp-{run.pid}'
    wait_for(run, lambda: tmp.is_dir() and listing(tmp))
    run.kill()
    run.communicate(timeout=limit(60))
    assert 0 < len(listing(tmp)) < len(SLOW_ENTRIES)
    assert not (cache / 'pokemon.extracted').exists()
    assert listing(download_extract('pokemon', str(cache))) == SLOW_LISTING
    assert cache_entries(cache) == DONE
    assert slow_pokemon.gets == ['/pokemon.zip']  # the verified zip was kept


# ----------------------------------------------------------------------- a read-only cache

# a process for which permission bits count, as for any user but root: root ignores them unless
# the capabilities that override them are dropped (setpriv, util-linux)
AS_USER = (['setpriv', '--bounding-set=-dac_override,-dac_read_search', '--']
           if os.geteuid() == 0 else [])
TRAIN_ON_POKEMON = RUN + ('from d2l_dcgan import cli\n'
                          'sys.exit(cli.train_main(sys.argv[4:], prog="train"))\n')


def snapshot(root):
    """Every file and folder under `root`: (size, modification time) by path."""
    found = {}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            st = os.stat(os.path.join(d, name))
            found[os.path.relpath(os.path.join(d, name), root)] = (st.st_size, st.st_mtime_ns)
    return found


@pytest.fixture
def read_only():
    """read_only(folder): takes the write bits off `folder` and all in it; they come back after."""
    folders = []

    def make(folder):
        folders.append(folder)
        for d, _, files in os.walk(folder):
            for name in files:
                os.chmod(os.path.join(d, name), 0o444)
            os.chmod(d, 0o555)
        probe = subprocess.run(AS_USER + ['touch', str(folder / 'probe')], capture_output=True)
        assert probe.returncode != 0 and not (folder / 'probe').exists()  # it is read-only
    yield make
    for folder in folders:
        for d, _, _ in os.walk(folder):
            os.chmod(d, 0o755)


def train_on_pokemon(cache, out):
    url, sha1 = d2l.DATA_HUB['pokemon']
    return subprocess.run(
        AS_USER + [sys.executable, '-c', TRAIN_ON_POKEMON, url, sha1, str(cache),
                   '--dataset', 'pokemon', '--cache-dir', str(cache), '--out-dir', str(out),
                   '--num-epochs', '1', '--n-G', '8', '--n-D', '8', '--batch-size', '4',
                   '--swd-samples', '0', '--device', 'cpu', '--no-progress'],
        capture_output=True, text=True, timeout=limit(300))


@pytest.mark.parametrize('decoded', [True, False], ids=['decoded', 'not-decoded'])
def test_a_read_only_cache_with_the_extracted_set_is_read_and_never_written(
        fake_pokemon, tmp_path, read_only, decoded):
    """A lab's read-only data mount: the verified, extracted set (here without the zip or a
    lock file), with or without its decoded-image cache entry."""
    cache = fake_pokemon
    download_extract('pokemon', str(cache))
    if decoded:
        read_images(str(cache / 'pokemon'), cache_dir=str(cache))
    os.remove(cache / 'pokemon.zip')
    os.remove(cache / 'pokemon.lock')
    read_only(cache)
    before = snapshot(cache)
    proc = train_on_pokemon(cache, tmp_path / 'run')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r'^loss_D \d+\.\d{3}, loss_G ', proc.stdout, re.M), proc.stdout
    in_memory = f'decoded-image cache: cannot write to {cache}/decoded; decoding in memory'
    assert proc.stderr.splitlines() == ([] if decoded else [in_memory]), proc.stderr
    assert snapshot(cache) == before


@pytest.mark.parametrize('holds', ['nothing', 'the zip'])
def test_a_read_only_cache_without_the_extracted_set_says_so_in_one_line(
        fake_pokemon, tmp_path, read_only, holds):
    cache = fake_pokemon
    cache.mkdir()
    if holds == 'the zip':
        download('pokemon', str(cache))
        os.remove(cache / 'pokemon.lock')
    read_only(cache)
    before = snapshot(cache)
    proc = train_on_pokemon(cache, tmp_path / 'run')
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.splitlines() == [
        f'train: error: argument --cache-dir: {cache} holds no extracted pokemon.zip and cannot '
        f'be written: give a --cache-dir that can be, or the extracted image folder as '
        f'--data-dir (see --help)']
    assert snapshot(cache) == before and not (tmp_path / 'run').exists()


@pytest.mark.parametrize('env, expected', [
    ({'D2L_DCGAN_CACHE': '/srv/cache', 'XDG_CACHE_HOME': '/x'}, '/srv/cache'),
    ({'XDG_CACHE_HOME': '/x'}, '/x/d2l-dcgan'),
    ({'HOME': '/home/reader'}, '/home/reader/.cache/d2l-dcgan'),
    ({'D2L_DCGAN_CACHE': 'rel/cache'}, None),
], ids=['D2L_DCGAN_CACHE', 'XDG_CACHE_HOME', 'HOME', 'relative'])
def test_one_data_cache_per_machine(monkeypatch, tmp_path, env, expected):
    """The notebook (run in examples/) and make (at the root) find the same folder."""
    from d2l_dcgan.data import default_cache_dir
    monkeypatch.chdir(tmp_path)
    for name in ('D2L_DCGAN_CACHE', 'XDG_CACHE_HOME'):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert default_cache_dir() == (expected or str(tmp_path / 'rel' / 'cache'))
    (tmp_path / 'examples').mkdir()
    monkeypatch.chdir(tmp_path / 'examples')
    assert default_cache_dir() == (expected or str(tmp_path / 'examples' / 'rel' / 'cache'))
