"""Fault injection: interrupted, corrupted, diverging and crowded runs lose nothing."""
import errno
import json
import os
import shutil

import mxnet as mx
import numpy as onp
import pytest
from mxnet import np

from d2l_dcgan import DCGANError, discriminator, generator, load_image_folder, make_sprites
from d2l_dcgan import checkpoint as ckpt
from d2l_dcgan.runfolder import RunLock
from d2l_dcgan.run import fit


@pytest.fixture(scope='module')
def sprites(tmp_path_factory):
    return make_sprites(str(tmp_path_factory.mktemp('data') / 'sprites'), num_images=96)


def _train(root, num_epochs, ckpt_dir, data_iter=None, **kwargs):
    data_iter = data_iter or load_image_folder(root, batch_size=32)  # 3 steps an epoch
    net_D, net_G = discriminator(8), generator(8)
    kwargs.setdefault('verbose', False)
    history = fit(net_D, net_G, data_iter, num_epochs, 0.005, 16, mx.cpu(), seed=11,
                  animator=None, checkpoint_dir=ckpt_dir, **kwargs)
    return history, net_D, net_G


def _weights(net):
    return [p.data().asnumpy() for p in net.collect_params().values()]


def _assert_same_run(a, b):
    assert [(r['epoch'], r['loss_D'], r['loss_G']) for r in a[0]] == \
        [(r['epoch'], r['loss_D'], r['loss_G']) for r in b[0]]
    for net_a, net_b in ((a[1], b[1]), (a[2], b[2])):
        for wa, wb in zip(_weights(net_a), _weights(net_b)):
            assert (wa == wb).all()


@pytest.fixture(scope='module')
def straight(sprites, tmp_path_factory):
    """Two epochs without a break: what every resumed run must reproduce exactly."""
    return _train(sprites, 2, str(tmp_path_factory.mktemp('straight')))


def test_resume_after_an_epoch_equals_a_straight_run(sprites, straight, tmp_path):
    first = _train(sprites, 1, str(tmp_path))
    assert len(first[0]) == 1
    resumed = _train(sprites, 2, str(tmp_path), resume=True)
    _assert_same_run(straight, resumed)


def test_resume_mid_epoch_equals_a_straight_run(sprites, straight, tmp_path):
    _train(sprites, 2, str(tmp_path), checkpoint_every=2)
    names = [os.path.basename(p) for p in ckpt.list_checkpoints(str(tmp_path))]
    assert names == ['ckpt-e0002-s000003', 'ckpt-e0002-s000001', 'ckpt-e0001-s000003']
    for path in ckpt.list_checkpoints(str(tmp_path))[:1] + ckpt.list_checkpoints(str(tmp_path))[2:]:
        shutil.rmtree(path)  # leave only the one from the middle of epoch 2
    resumed = _train(sprites, 2, str(tmp_path), resume=True)
    _assert_same_run(straight, resumed)


def test_only_the_newest_k_checkpoints_are_kept(sprites, tmp_path):
    _train(sprites, 3, str(tmp_path), checkpoint_every=1, keep_checkpoints=2)
    assert [os.path.basename(p) for p in ckpt.list_checkpoints(str(tmp_path))] == \
        ['ckpt-e0003-s000003', 'ckpt-e0003-s000002']
    assert not [n for n in os.listdir(tmp_path) if n.startswith('.tmp')]


@pytest.mark.parametrize('damage', ['flip_byte', 'truncate', 'delete_manifest', 'bad_json'])
def test_a_corrupt_checkpoint_is_reported_and_the_previous_one_used(sprites, tmp_path, capsys,
                                                                     damage):
    _train(sprites, 2, str(tmp_path))
    newest, previous = ckpt.list_checkpoints(str(tmp_path))[:2]
    target = os.path.join(newest, 'net_G.params')
    if damage == 'flip_byte':
        data = bytearray(open(target, 'rb').read())
        data[len(data) // 2] ^= 0xFF
        open(target, 'wb').write(bytes(data))
    elif damage == 'truncate':
        os.truncate(target, os.path.getsize(target) // 3)
    elif damage == 'delete_manifest':
        os.remove(os.path.join(newest, 'MANIFEST.json'))
    else:
        open(os.path.join(newest, 'MANIFEST.json'), 'w').write('{"net_G.par')
    path, state = ckpt.newest_valid_checkpoint(str(tmp_path))
    assert path == previous and state['epoch'] == 1
    message = capsys.readouterr().out
    assert newest in message and 'trying the previous one' in message
    assert len(message.strip().splitlines()) == 1


def test_a_crash_while_writing_leaves_the_previous_checkpoint(sprites, tmp_path, monkeypatch):
    _train(sprites, 1, str(tmp_path))
    before = ckpt.list_checkpoints(str(tmp_path))
    real = mx.gluon.Trainer.save_states

    def crash_half_way(self, fname):
        real(self, fname)
        if 'trainer_D' in fname:
            raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(mx.gluon.Trainer, 'save_states', crash_half_way)
    with pytest.raises(DCGANError, match='disk is full.*last good one'):
        _train(sprites, 2, str(tmp_path), resume=True)
    assert ckpt.list_checkpoints(str(tmp_path)) == before
    assert ckpt.verify_checkpoint(before[0])['epoch'] == 1
    assert not [n for n in os.listdir(tmp_path) if n.startswith('.tmp')]


class _Poisoned:
    """The sprites, with NaN images from a given epoch on: a stand-in for a blow-up."""

    def __init__(self, root, from_epoch):
        self.loader = load_image_folder(root, batch_size=32)
        self.from_epoch, self.epoch = from_epoch, 0

    def __iter__(self):
        self.epoch += 1
        for X, y in self.loader:
            yield (X * np.nan if self.epoch >= self.from_epoch else X), y


def test_divergence_stops_the_run_and_keeps_the_good_checkpoint(sprites, tmp_path):
    with pytest.raises(DCGANError, match=r'diverged at .*epoch 2.*ckpt-e0001-s000003'):
        _train(sprites, 3, str(tmp_path), data_iter=_Poisoned(sprites, 2))
    path, state = ckpt.newest_valid_checkpoint(str(tmp_path))
    assert state['epoch'] == 1
    net_G = generator(8)
    net_G.load_parameters(os.path.join(path, 'net_G.params'))
    assert all(onp.isfinite(w).all() for w in _weights(net_G))


def test_divergence_with_rollback_lowers_the_lr_then_gives_up(sprites, tmp_path, capsys):
    # poisoned for good, so every retry diverges: three rollbacks at halved lr, then a clear stop
    with pytest.raises(DCGANError, match='diverged'):
        _train(sprites, 3, str(tmp_path), data_iter=_Poisoned(sprites, 2),
               on_divergence='rollback', verbose=True)
    err = capsys.readouterr().err
    assert err.count('rolling back') == 3
    assert 'lr 0.0025' in err and 'lr 0.00125' in err and 'lr 0.000625' in err
    state = ckpt.verify_checkpoint(ckpt.list_checkpoints(str(tmp_path))[0])
    assert state['epoch'] == 1


def test_rollback_recovers_from_a_transient_blow_up(sprites, tmp_path):
    class Once(_Poisoned):
        def __iter__(self):
            self.epoch += 1
            for X, y in self.loader:
                yield (X * np.nan if self.epoch == 2 else X), y

    history, _, _ = _train(sprites, 3, str(tmp_path), data_iter=Once(sprites, 2),
                           on_divergence='rollback')
    assert [r['epoch'] for r in history] == [1, 2, 3]
    assert onp.isfinite([[r['loss_D'], r['loss_G']] for r in history]).all()
    state = ckpt.verify_checkpoint(ckpt.list_checkpoints(str(tmp_path))[0])
    assert state['lr'] == pytest.approx(0.0025)


def test_exploding_losses_count_as_divergence(sprites, tmp_path):
    with pytest.raises(DCGANError, match='diverged'):
        _train(sprites, 1, str(tmp_path), max_loss=1e-3)


def test_a_second_run_into_the_same_folder_is_refused(tmp_path):
    with RunLock(str(tmp_path)):
        with pytest.raises(DCGANError, match=f'another run \\(pid {os.getpid()}\\)'):
            with RunLock(str(tmp_path)):
                pass
    with RunLock(str(tmp_path)):  # released on exit
        pass


def test_checkpoint_state_records_what_resume_needs(sprites, tmp_path):
    _train(sprites, 1, str(tmp_path))
    path = ckpt.list_checkpoints(str(tmp_path))[0]
    state = json.load(open(os.path.join(path, 'state.json')))
    assert {'epoch', 'step', 'global_step', 'history', 'seed', 'lr'} <= set(state)
    assert sorted(os.listdir(path)) == sorted(ckpt.FILES + ('MANIFEST.json',))
