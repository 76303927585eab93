"""A training run's folder (train's --out-dir): its layout, its lock, its temporary files,
metrics.json and the settings a resume reads. Only this module names the folder's files.

The run records its settings in metrics.json when it starts, before reading any data, then the
data it read, then each epoch; checkpoints/ holds its commit points (d2l_dcgan.checkpoint)."""
import json
import os

from .checkpoint import EMA_FILE, list_checkpoints, newest_valid_checkpoint
from .errors import ArgumentError
from .fileio import FileLock, is_temporary, remove_path, save_params, write_json
from .plot import save_image_grid

METRICS, CHECKPOINTS, SAMPLES, LOCK, FIGURE = (
    'metrics.json', 'checkpoints', 'samples', '.lock', 'dcgan.png')
EMA_PARAMS = EMA_FILE  # the weight average, as in a checkpoint


def run_folder_of(path):
    """The training run folder that `path` would be a file of (its samples/ too), or None."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.basename(folder) == SAMPLES:
        folder = os.path.dirname(folder)
    is_run = all(os.path.exists(os.path.join(folder, f)) for f in (METRICS, CHECKPOINTS))
    return folder if is_run else None


class RunLock(FileLock):
    """An exclusive lock on an output folder, so two runs never interleave their files."""

    def __init__(self, out_dir):
        super().__init__(os.path.join(out_dir, LOCK))

    def __enter__(self):
        if not self.acquire(blocking=False):
            raise ArgumentError('out_dir', f'another run (pid {self.holder()}) is writing '
                                f'to {os.path.dirname(self.path)}; wait for it or use another '
                                'out_dir')
        return self

    def __exit__(self, *exc):
        self.release()


def remove_temporaries(out_dir):
    """Remove the temporary files and folders that killed writers left in a run folder, its
    samples/ and checkpoints/; only under its RunLock, when no other process writes there."""
    removed = []
    for folder in (out_dir, os.path.join(out_dir, SAMPLES), os.path.join(out_dir, CHECKPOINTS)):
        for name in os.listdir(folder) if os.path.isdir(folder) else ():
            path = os.path.join(folder, name)
            if is_temporary(name):
                remove_path(path)
                removed.append(path)
    return removed


class RunFolder:
    """Where each file of the run in `out` goes, and what it recorded. As a context: the folder
    created and locked for one run, left as it was found if the run fails before it has read
    its data (a missing data folder, say)."""

    def __init__(self, out):
        self.out, self.existed = out, os.path.exists(out)
        self.lock = RunLock(out)
        self.checkpoints = os.path.join(out, CHECKPOINTS)
        self.metrics, self.figure = os.path.join(out, METRICS), os.path.join(out, FIGURE)
        self.fresh = False  # True while only this process's record of its settings is there

    def params(self, name):
        """The path of a net's parameters: net_G's, net_D's (or, with `EMA_PARAMS`, those of
        the generator's weight average)."""
        return os.path.join(self.out, name if name == EMA_PARAMS else f'{name}.params')

    @staticmethod
    def written(averaged):
        """The files a run writes, as its last line says them."""
        ema = f'{EMA_PARAMS}, ' if averaged else ''
        return (f'{FIGURE}, {SAMPLES}/, net_G.params, {ema}net_D.params, {METRICS}, '
                f'{CHECKPOINTS}/')

    def sample_grid(self, epoch):
        return os.path.join(self.out, SAMPLES, f'epoch_{epoch:03d}.png')

    def newest_checkpoint(self):
        """The newest checkpoint folder's name, or None."""
        found = list_checkpoints(self.checkpoints)
        return os.path.basename(found[0]) if found else None

    def history(self):
        """The epoch records in the newest valid checkpoint ([] without one)."""
        _, state = newest_valid_checkpoint(self.checkpoints,
                                           report=lambda message: None)  # fit reports them
        return (state or {}).get('history', [])

    def epochs_done(self):
        """The last epoch the newest valid checkpoint finished (0 without one)."""
        return max((r['epoch'] for r in self.history()), default=0)

    def was_locked(self):
        """True if a run has taken the folder (and left its lock file)."""
        return os.path.exists(self.lock.path)

    def recorded(self):
        """What the run recorded in metrics.json (settings first); OSError, ValueError, KeyError
        or TypeError if it recorded nothing readable."""
        with open(self.metrics) as f:
            saved = json.load(f)
        saved['settings']
        return saved

    def record(self, metrics):
        write_json(self.metrics, metrics)

    def start(self, settings, recipe):
        """Record the settings of a run before it reads its data: a run killed from now on is
        resumed with them."""
        self.fresh = not os.path.exists(self.metrics)
        self.record({'settings': settings, 'recipe': recipe, 'epochs': []})

    def __enter__(self):
        try:
            os.makedirs(os.path.join(self.out, SAMPLES), exist_ok=True)
        except OSError as e:
            raise ArgumentError('out_dir', f'cannot create {self.out}: {e.strerror or e}') from e
        self.lock.__enter__()  # refused: the folder is another run's, and so is all in it
        for path in remove_temporaries(self.out):
            print(f'removed {path}, left by a process that was killed while writing it')
        return self

    def __exit__(self, kind, *exc):
        failed_empty = kind is not None and (self.fresh or not os.path.exists(self.metrics))
        if failed_empty:  # removed while the lock is held, so no other run sees it go
            for remove, path in ((os.remove, self.metrics), (os.rmdir, os.path.join(
                    self.out, SAMPLES)), (os.remove, self.lock.path)):
                _remove_if_there(remove, path)
        self.lock.__exit__(kind, *exc)
        if failed_empty and not self.existed:
            _remove_if_there(os.rmdir, self.out)


def _remove_if_there(remove, path):
    try:
        remove(path)
    except OSError:  # not there, or (a folder) not empty: not ours to remove
        pass


class RunFiles:
    """What a training run writes into its RunFolder after every epoch, each file atomically."""

    def __init__(self, folder, fixed_Z, metrics):
        self.folder, self.fixed_Z, self.metrics = folder, fixed_Z, metrics
        folder.fresh = False  # the run has read its data: its folder stays
        folder.record(metrics)

    def on_epoch_samples(self, record, sample):
        save_image_grid(sample(self.fixed_Z), self.folder.sample_grid(record['epoch']))
        if sample.average:
            save_params(sample.net, self.folder.params(EMA_PARAMS))

    def on_epoch_end(self, record, net_D, net_G):
        save_params(net_G, self.folder.params('net_G'))
        save_params(net_D, self.folder.params('net_D'))
        # an epoch run again after a rollback or resume replaces its earlier record
        epochs = [r for r in self.metrics['epochs'] if r['epoch'] < record['epoch']]
        self.metrics['epochs'] = epochs + [record]
        self.folder.record(self.metrics)
