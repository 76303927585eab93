"""`train --resume OUT_DIR`: the settings of the run it continues, and the flags that may change."""
import argparse
import hashlib
import os

from ..data import file_stats, list_images
from ..errors import DCGANError
from ..flags import epochs_for
from ..recipes import Recipe
from ..runfolder import METRICS, RunFolder
from .recipe_flags import OPTIONS, RECIPE_FLAGS, flag, train_recipe

KEPT, CHANGEABLE, NEW = 'kept', 'changeable', 'new'
# what --resume does with each of train's options (a test checks that none is missing): KEPT,
# the run's, and one given must agree with it (a recipe option: give the run's recipe);
# CHANGEABLE, the run's unless given, and one given applies (and is recorded); NEW, this
# command line's, whatever the run had (out_dir, kept as the folder resumed, is checked apart)
ON_RESUME = {
    **dict.fromkeys(('dataset', 'num_sprites', 'batch_size', 'lr', 'latent_dim', 'n_G', 'n_D',
                     'alpha', 'seed', 'num_samples', 'swd_samples', 'hybridize', 'recipe',
                     'skip_bad_images', 'max_image_pixels', 'out_dir'), KEPT),
    **{name: OPTIONS[name].metadata['resume'] for name in RECIPE_FLAGS},
    **dict.fromkeys(('num_epochs', 'budget', 'device', 'num_workers',
                     'checkpoint_every', 'keep_checkpoints', 'on_divergence', 'max_loss',
                     'cache_dir', 'data_dir'), CHANGEABLE),
    **dict.fromkeys(('resume', 'progress', 'image_cache'), NEW),
}


def images_fingerprint(root):
    """(count, digest) of an ImageFolder's image files: their paths under `root` and sizes."""
    items, _ = list_images(root)
    digest = hashlib.sha256()
    for rel, size, _ in file_stats(root, items):
        digest.update(f'{rel}\0{size}\0'.encode(errors='surrogateescape'))
    return len(items), digest.hexdigest()


def read_run(run_dir):
    """What the run in `run_dir` recorded: its settings when it started, then its data and
    epochs."""
    if not os.path.isdir(run_dir):
        raise DCGANError(f'--resume {run_dir}: no such folder')
    folder = RunFolder(run_dir)
    try:
        return folder.recorded()
    except (OSError, ValueError, KeyError, TypeError) as e:
        if folder.was_locked() and not os.path.exists(folder.metrics):
            raise DCGANError(f'--resume {run_dir}: its run was stopped before it recorded its '
                             f'settings in {METRICS}; start it again with its own flags') from e
        raise DCGANError(f'--resume {run_dir}: no readable {METRICS}, so not a run folder '
                         f'of this program ({type(e).__name__})') from e


def run_recipe(run_dir):
    """The recipe the run in `run_dir` trained with, as it recorded it: a run
    continues with it, whatever --recipe's techniques are today."""
    return Recipe.from_json(read_run(run_dir).get('recipe'))  # none recorded: the book's


def check_recipe(args, given, saved):
    """A recipe flag given with --resume must give the recipe the run trained with."""
    ran, now = Recipe.from_json(saved.get('recipe')), train_recipe(args)
    for key in RECIPE_FLAGS:
        if key in given and getattr(now, key) != getattr(ran, key):
            raise DCGANError(f'--resume continues {args.resume} with its own recipe '
                             f'({ran.describe()}): {flag(key)} is {getattr(ran, key)!r} there')


def check_data_dir(args, saved):
    """A --data-dir given anew (a moved folder) must hold the run's images, if it read any."""
    if 'num_images' not in saved:  # stopped before it read its data: it starts anew
        return
    count, digest = images_fingerprint(args.data_dir)
    want = saved.get('images_fingerprint')
    ok = digest == want if want else count == saved.get('num_images', 0) + len(
        saved.get('skipped_images', []))
    if not ok:
        raise DCGANError(f'--data-dir {args.data_dir} does not hold the images the run in '
                         f'{args.resume} trained on ({count} images there; the run read '
                         f'{saved.get("data_dir")}): give the folder it was trained on')


def resume_settings(args, given):
    """(args, complete) of a --resume: the saved run's settings, with the flags given now
    checked (those KEPT must agree) or applied (CHANGEABLE), out_dir the run's folder; and
    the line to say if the run has done all it is asked to (else None)."""
    run_dir, saved = args.resume, read_run(args.resume)
    settings = saved['settings']
    if 'out_dir' in given and os.path.realpath(args.out_dir) != os.path.realpath(run_dir):
        raise DCGANError(f'--resume continues {run_dir} in place: --out-dir {args.out_dir} is '
                         f'another folder (copy {run_dir} there first to branch the run)')
    for key in (k for k, rule in ON_RESUME.items() if rule == KEPT and k not in RECIPE_FLAGS
                and k != 'out_dir'):
        if key in given and key in settings and getattr(args, key) != settings[key]:
            raise DCGANError(f'--resume continues {run_dir} with its own settings: '
                             f'{flag(key)} is {settings[key]!r} there')
    merged = {**vars(args), **{k: settings[k] for k, rule in ON_RESUME.items()
                               if rule != NEW and k in settings and k not in given}}
    if settings.get('devices') and 'device' not in given:  # recorded by the older --devices
        merged['device'] = settings['devices']
    if 'num_epochs' in given:  # a length given in epochs replaces the run's budget
        merged['budget'] = None
    if 'data_dir' not in given and settings.get('data_dir') and not os.path.isabs(
            settings['data_dir']):  # saved relative by older versions: the absolute root read
        merged['data_dir'] = saved.get('data_dir', settings['data_dir'])
    merged.update(out_dir=run_dir, resume=run_dir)
    args = argparse.Namespace(**merged)
    check_recipe(args, given, saved)
    if 'data_dir' in given and args.data_dir:
        check_data_dir(args, saved)
    done, length = length_asked(args, saved)
    complete = done and done == args.num_epochs
    return args, (f'the run in {run_dir} is complete: {done} epoch(s) done, as {length} asks; '
                  'nothing to train' if complete else None)


def length_asked(args, saved):
    """(epochs done, the run's length as asked) of a resumed run, its --budget counted (once)
    in epochs of the images it recorded; a DCGANError if it asks for fewer than done."""
    done = RunFolder(args.resume).epochs_done()
    if not done:  # nothing trained: --budget is counted in the images the run reads
        return 0, ''
    if args.budget:
        args.num_epochs = epochs_for(args.budget, saved['num_images'])
        length = (f'--budget {args.budget:,} ({args.num_epochs} epoch(s) of its '
                  f'{saved["num_images"]:,} images)')
        least = f'more than {(done - 1) * saved["num_images"]:,} images'
    else:
        length, least = f'--num-epochs {args.num_epochs}', f'{done} or more'
    if args.num_epochs < done:
        raise DCGANError(f'the run in {args.resume} has done {done} epoch(s): {length} is '
                         f'fewer; give {least}')
    return done, length
