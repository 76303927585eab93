"""Checkpoints that survive crashes: atomic, checksummed, the last K kept; and a run lock.

A checkpoint is a folder `ckpt-e0003-s000480/` holding both nets' parameters, both trainers'
optimizer states, the fixed sample noise and `state.json` (epoch, step, history, seed, learning
rates, recipe), with a recipe's weight average of the generator `net_G_ema.params`, and
`MANIFEST.json` (SHA-256 of each file) written last. It is assembled under a temporary name
and renamed into place, so a crash mid-write leaves the previous checkpoint as the newest one."""
import errno
import json
import os
import re
import shutil

import numpy as onp

from .errors import ArgumentError, DCGANError
from .fileio import FileLock, file_digest, fsync_path, remove_path

NAME = re.compile(r'^ckpt-e(\d+)-s(\d+)$')
FILES = ('net_G.params', 'net_D.params', 'trainer_G.states', 'trainer_D.states',
         'fixed_Z.npy', 'state.json')
EMA_FILE = 'net_G_ema.params'  # only in runs whose recipe averages the generator


def _sha256(path):
    return file_digest(path, 'sha256')


def list_checkpoints(ckpt_dir):
    """Checkpoint folders in `ckpt_dir`, newest (highest epoch, then step) first."""
    if not os.path.isdir(ckpt_dir):
        return []
    found = []
    for name in os.listdir(ckpt_dir):
        m = NAME.match(name)
        if m:
            found.append(((int(m.group(1)), int(m.group(2))), os.path.join(ckpt_dir, name)))
    return [path for _, path in sorted(found, reverse=True)]


def save_checkpoint(ckpt_dir, net_D, net_G, trainer_D, trainer_G, fixed_Z, state, keep=3,
                    ema_net=None):
    """Write one checkpoint atomically and keep only the newest `keep`; return its path.
    `ema_net`: the generator's weight average, if the run has one."""
    name = f'ckpt-e{state["epoch"]:04d}-s{state["step"]:06d}'
    final = os.path.join(ckpt_dir, name)
    tmp = os.path.join(ckpt_dir, f'.tmp-{name}-{os.getpid()}')
    try:
        os.makedirs(ckpt_dir, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        net_G.save_parameters(os.path.join(tmp, 'net_G.params'))
        net_D.save_parameters(os.path.join(tmp, 'net_D.params'))
        trainer_G.save_states(os.path.join(tmp, 'trainer_G.states'))
        trainer_D.save_states(os.path.join(tmp, 'trainer_D.states'))
        onp.save(os.path.join(tmp, 'fixed_Z.npy'), fixed_Z.asnumpy())
        with open(os.path.join(tmp, 'state.json'), 'w') as f:
            json.dump(state, f)
        if ema_net is not None:
            ema_net.save_parameters(os.path.join(tmp, EMA_FILE))
        manifest = {}
        for fname in FILES + ((EMA_FILE,) if ema_net is not None else ()):
            path = os.path.join(tmp, fname)
            fsync_path(path)
            manifest[fname] = _sha256(path)
        with open(os.path.join(tmp, 'MANIFEST.json'), 'w') as f:
            json.dump(manifest, f)
            f.flush()
            os.fsync(f.fileno())
        fsync_path(tmp)
        if os.path.exists(final):  # the same step saved again (e.g. on interrupt right after)
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_path(ckpt_dir)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        kept = list_checkpoints(ckpt_dir)
        why = 'the disk is full' if e.errno == errno.ENOSPC else (e.strerror or str(e))
        raise DCGANError(f'could not write checkpoint {final}: {why}; the last good one, '
                         f'{kept[0] if kept else "none"}, is kept') from e
    for old in list_checkpoints(ckpt_dir)[keep:]:  # renamed first: never half of one in place
        gone = os.path.join(ckpt_dir, f'.tmp-del-{os.path.basename(old)}-{os.getpid()}')
        try:
            os.replace(old, gone)
        except OSError:
            continue
        shutil.rmtree(gone, ignore_errors=True)
    return final


def verify_checkpoint(path):
    """The checkpoint's state dict if every file is present and matches its checksum, else
    a DCGANError saying what is wrong."""
    manifest_path = os.path.join(path, 'MANIFEST.json')
    try:
        with open(manifest_path) as f:
            manifest = json.load(f)
        # the required files, and any other the manifest lists (the weight average)
        for fname in FILES + tuple(sorted(set(manifest) - set(FILES))):
            if _sha256(os.path.join(path, fname)) != manifest[fname]:
                raise DCGANError(f'checkpoint {path} is corrupt: {fname} fails its checksum')
        with open(os.path.join(path, 'state.json')) as f:
            return json.load(f)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DCGANError(f'checkpoint {path} is incomplete or corrupt '
                         f'({type(e).__name__}: {e})') from e


def newest_valid_checkpoint(ckpt_dir, report=print):
    """(path, state) of the newest checkpoint that verifies, reporting each one skipped."""
    for path in list_checkpoints(ckpt_dir):
        try:
            return path, verify_checkpoint(path)
        except DCGANError as e:
            report(f'{e}; trying the previous one')
    return None, None


def load_checkpoint(path, net_D, net_G, trainer_D, trainer_G, devices, ema_net=None):
    """Restore nets and trainers (and `ema_net`, the generator's weight average) in place;
    return the fixed sample noise as a NumPy array."""
    if ema_net is not None:
        ema_path = os.path.join(path, EMA_FILE)
        if not os.path.isfile(ema_path):
            raise DCGANError(f'checkpoint {path} has no {EMA_FILE}: its run did not average '
                             f'the generator; continue it with its own recipe')
        ema_net.load_parameters(ema_path, ctx=devices[0])
    net_G.load_parameters(os.path.join(path, 'net_G.params'), ctx=devices)
    net_D.load_parameters(os.path.join(path, 'net_D.params'), ctx=devices)
    trainer_G.load_states(os.path.join(path, 'trainer_G.states'))
    trainer_D.load_states(os.path.join(path, 'trainer_D.states'))
    return onp.load(os.path.join(path, 'fixed_Z.npy'))


TEMPORARY = re.compile(r'(.+\.tmp-\d+|\.tmp-.+)$')  # fileio.atomic_write's and ours


def remove_temporaries(out_dir):
    """Remove the temporary files and folders that killed writers left in a run folder, its
    samples/ and checkpoints/; only under its RunLock, when no other process writes there."""
    removed = []
    for folder in (out_dir, os.path.join(out_dir, 'samples'), os.path.join(out_dir, 'checkpoints')):
        for name in os.listdir(folder) if os.path.isdir(folder) else ():
            path = os.path.join(folder, name)
            if TEMPORARY.match(name):
                remove_path(path)
                removed.append(path)
    return removed


class RunLock(FileLock):
    """An exclusive lock on an output folder, so two runs never interleave their files."""

    def __init__(self, out_dir):
        super().__init__(os.path.join(out_dir, '.lock'))

    def __enter__(self):
        if not self.acquire(blocking=False):
            raise ArgumentError('out_dir', f'another run (pid {self.holder()}) is writing '
                                f'to {os.path.dirname(self.path)}; wait for it or use another '
                                'out_dir')
        return self

    def __exit__(self, *exc):
        self.release()
