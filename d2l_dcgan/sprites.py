"""A procedurally drawn stand-in for the Pokemon sprites: same layout, made offline, deterministic.

Colourful little creatures on white, 64x64 PNGs in `root/<kind>/<n>.png`, so that tests and a CPU
demo can run the chapter's pipeline end to end where pokemon.zip cannot be downloaded."""
import json
import os

import numpy as onp
from PIL import Image, ImageDraw

from .fileio import FileLock

KINDS = ('round', 'spiky', 'tall', 'winged')


def _colour(rng, low=40, high=230):
    c = rng.integers(low, high, size=3)
    c[rng.integers(3)] = rng.integers(200, 256)  # keep one channel bright: saturated, sprite-like
    return tuple(int(v) for v in c)


def _darker(c, f=0.55):
    return tuple(int(v * f) for v in c)


def draw_sprite(rng, kind, size=64):
    """One RGB sprite of `kind` as a PIL image, drawn at 4x and downsampled for smooth edges."""
    s = 4 * size
    img = Image.new('RGB', (s, s), (255, 255, 255))
    d = ImageDraw.Draw(img)
    body, belly, accent = _colour(rng), _colour(rng, 150, 256), _colour(rng)
    cx = s / 2 + rng.normal(0, s * 0.04)
    cy = s * 0.58 + rng.normal(0, s * 0.03)
    r = s * rng.uniform(0.2, 0.27)
    w = 2 * 4
    # feet first, so the body covers their tops
    for side in (-1, 1):
        fx = cx + side * r * 0.55
        d.ellipse([fx - r * 0.3, cy + r * 0.7, fx + r * 0.3, cy + r * 1.1],
                  fill=_darker(body, 0.8), outline=_darker(body), width=w)
    if kind == 'round':
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=body, outline=_darker(body), width=w)
    elif kind == 'spiky':
        n = int(rng.integers(5, 9))
        angles = onp.linspace(0, 2 * onp.pi, 2 * n, endpoint=False) + rng.uniform(0, onp.pi)
        radii = onp.where(onp.arange(2 * n) % 2 == 0, r * 1.25, r * 0.8)
        pts = [(cx + q * onp.cos(a), cy + q * onp.sin(a)) for q, a in zip(radii, angles)]
        d.polygon(pts, fill=body, outline=_darker(body))
    elif kind == 'tall':
        d.rounded_rectangle([cx - r * 0.75, cy - r * 1.3, cx + r * 0.75, cy + r],
                            radius=r * 0.5, fill=body, outline=_darker(body), width=w)
    else:  # winged
        for side in (-1, 1):
            tip = (cx + side * r * 2.0, cy - r * rng.uniform(0.6, 1.2))
            d.polygon([(cx + side * r * 0.5, cy - r * 0.4), tip, (cx + side * r * 0.6, cy + r * 0.5)],
                      fill=accent, outline=_darker(accent))
        d.ellipse([cx - r * 0.85, cy - r, cx + r * 0.85, cy + r], fill=body,
                  outline=_darker(body), width=w)
    # belly, eyes, mouth
    d.ellipse([cx - r * 0.45, cy, cx + r * 0.45, cy + r * 0.75], fill=belly)
    ey = cy - r * 0.35
    for side in (-1, 1):
        ex = cx + side * r * 0.35
        d.ellipse([ex - r * 0.2, ey - r * 0.22, ex + r * 0.2, ey + r * 0.22], fill=(255, 255, 255),
                  outline=(20, 20, 20), width=w // 2)
        d.ellipse([ex - r * 0.09, ey - r * 0.1, ex + r * 0.09, ey + r * 0.1], fill=(10, 10, 10))
    d.arc([cx - r * 0.2, cy - r * 0.15, cx + r * 0.2, cy + r * 0.15], 20, 160,
          fill=(30, 30, 30), width=w // 2)
    return img.resize((size, size), Image.LANCZOS)


def make_sprites(root, num_images=512, seed=0, size=64):
    """Write `num_images` sprites under `root` (once; later calls with the same settings reuse them).

    Returns `root`, an ImageFolder root like the extracted pokemon.zip. Processes drawing the
    same set at once take turns (a lock file beside `root`), so none reads a half-drawn set."""
    settings = {'num_images': int(num_images), 'seed': int(seed), 'size': int(size),
                'kinds': list(KINDS), 'version': 1}
    base = os.path.normpath(root)
    if _drawn(root, base + '.json', settings):  # only read: the folder may be read-only
        return root
    os.makedirs(os.path.dirname(base) or '.', exist_ok=True)
    with FileLock(base + '.lock').held(f'drawing {root}'):
        _draw_once(root, base + '.json', settings)
    return root


def _drawn(root, marker, settings):
    """Whether `marker` (beside root: ImageFolderDataset warns of files in it) says the set is
    in `root` with these settings."""
    try:
        with open(marker) as f:
            return os.path.isdir(root) and json.load(f) == settings
    except (OSError, ValueError):  # none, or a marker cut short: draw the set again
        return False


def _draw_once(root, marker, settings):
    """Draw the set into `root` unless it is there with these settings."""
    if _drawn(root, marker, settings):  # another process may have drawn it while this waited
        return
    if os.path.exists(marker):  # a rewrite cut short must not pass for the old set
        os.remove(marker)
    rng = onp.random.default_rng(settings['seed'])
    for kind in KINDS:
        folder = os.path.join(root, kind)
        os.makedirs(folder, exist_ok=True)
        for name in os.listdir(folder):  # sprites of earlier settings, e.g. a larger set
            if name.endswith('.png') and name[:-4].isdigit():
                os.remove(os.path.join(folder, name))
    for i in range(settings['num_images']):
        kind = KINDS[i % len(KINDS)]
        draw_sprite(rng, kind, settings['size']).save(os.path.join(root, kind, f'{i:05d}.png'))
    with open(marker, 'w') as f:
        json.dump(settings, f)
