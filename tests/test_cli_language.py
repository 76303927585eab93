"""One command line: the same option has one name in every command (older spellings still work,
with a note), mixed-case flags take lower case, near misses get "did you mean", every error is
argparse's one line with the --help hint, and each --help ends with examples. Below the command
line, errors name the function's argument, never a flag."""
import ast
import importlib.util
import math
import os
import pathlib
import re
import sys

import pytest

import d2l_dcgan
from d2l_dcgan import ArgumentError, DCGANError, cli
from d2l_dcgan.runfolder import RunLock
from d2l_dcgan.commands.evaluate import evaluate_parser
from d2l_dcgan.commands.generate import generate_parser
from d2l_dcgan.commands.train import train_parser
from d2l_dcgan.crosscheck import crosscheck_main, crosscheck_parser
from d2l_dcgan.gpu import select_device
from d2l_dcgan.run import DivergenceGuard

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'd2l_dcgan'


def example(name):
    """examples/<name>.py as a module (its work happens under `if __name__ == '__main__'`)."""
    path = ROOT / 'examples' / f'{name}.py'
    spec = importlib.util.spec_from_file_location(f'example_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PARSERS = {
    'train': lambda: train_parser('train'),
    'generate': lambda: generate_parser('generate'),
    'evaluate': lambda: evaluate_parser('evaluate'),
    'crosscheck': lambda: crosscheck_parser('crosscheck'),
    'exercise_relu': lambda: example('exercise_relu').parser(),
    'exercise_fashion_mnist': lambda: example('exercise_fashion_mnist').parser(),
    'gpu_check': lambda: example('gpu_check').parser(),
}
MAINS = {  # what runs each command's argv (the examples run their parser's parse_args)
    'train': lambda argv: cli.train_main(argv, prog='train'),
    'train_pokemon': lambda argv: cli.train_main(argv, prog='train_pokemon.py'),
    'generate': lambda argv: cli.generate_main(argv, prog='generate'),
    'evaluate': lambda argv: cli.evaluate_main(argv, prog='evaluate'),
    'crosscheck': lambda argv: crosscheck_main(argv, prog='crosscheck'),
    **{name: (lambda name: lambda argv: PARSERS[name]().parse_args(argv))(name)
       for name in ('exercise_relu', 'exercise_fashion_mnist', 'gpu_check')},
}
PROGS = {name: f'{name}.py' for name in ('train_pokemon', 'exercise_relu',
                                          'exercise_fashion_mnist', 'gpu_check')}


def exits(capfd, name, *argv):
    """(exit status, stdout, stderr) of command `name` given argv, which argparse refuses."""
    with pytest.raises(SystemExit) as e:
        MAINS[name]([str(a) for a in argv])
    out, err = capfd.readouterr()
    return e.value.code, out, err


def options(parser):
    return {o for action in parser._actions for o in action.option_strings}


# ------------------------------------------------------------------------- one name each

# the names of the same thing, and the spellings of earlier versions that still work
ONE_NAME = {'--num-samples': ('--num', '--num-generated'), '--ncols': ('--samples-per-row',),
            '--device': ('--devices',)}


@pytest.mark.parametrize('name', list(PARSERS))
def test_the_same_option_has_the_same_name_in_every_command(name):
    listed = options(PARSERS[name]())
    assert '--device' in listed
    for old in (o for olds in ONE_NAME.values() for o in olds):
        assert old not in listed, f'{name} lists {old}'


@pytest.mark.parametrize('name, old, new, value', [
    ('generate', '--num', 'num_samples', '16'),
    ('evaluate', '--num', 'num_samples', '16'),
    ('exercise_fashion_mnist', '--num-generated', 'num_samples', '16'),
    ('exercise_fashion_mnist', '--samples-per-row', 'ncols', '5'),
    ('train', '--devices', 'device', 'cpu:0,cpu:1'),
])
def test_older_spellings_still_work_with_a_note(capfd, name, old, new, value):
    parser = PARSERS[name]()
    need = ['--params', 'x'] if name in ('generate', 'evaluate') else []
    args = parser.parse_args(need + [old, value])
    assert str(getattr(args, new)) == value
    out, err = capfd.readouterr()
    today = next(n for n, olds in ONE_NAME.items() if old in olds)
    assert err == f'{parser.prog}: note: {old} is now {today} ({old} still works)\n'
    assert parser.parse_args(need + [f'{old}={value}']) == args  # the --flag=value form too
    capfd.readouterr()
    assert parser.parse_args(need + [today, value]) == args
    assert capfd.readouterr().err == ''  # today's spelling: no note


def test_a_renamed_flag_is_noted_once_for_train(tmp_path, capfd):
    """train parses its argv twice (the flags given, for --resume): one note still."""
    code = cli.train_main(['--devices', 'cpu:0,cpu:1', '--batch-size', '1', '--out-dir',
                           str(tmp_path / 'out')], prog='train')
    err = capfd.readouterr().err
    assert code == 2 and err.count('note: --devices is now --device') == 1, err
    assert err.splitlines()[-1] == ('train: error: --batch-size 1 is smaller than the 2 devices '
                                    'of --device, which each need an image of every batch: give '
                                    '--batch-size 2 or more (see --help)')


# ------------------------------------------------------------------------- mixed case, near misses

@pytest.mark.parametrize('name', ['train', 'crosscheck', 'exercise_relu',
                                  'exercise_fashion_mnist'])
def test_mixed_case_flags_take_lower_case(capfd, name):
    parser = PARSERS[name]()
    mixed = sorted(o for o in options(parser) if o != o.lower())
    assert {'--n-G', '--n-D'} <= set(mixed)
    args = parser.parse_args([a for o in mixed for a in (o.lower(), '3')])
    assert all(getattr(args, o[2:].replace('-', '_')) == 3 for o in mixed)
    assert capfd.readouterr().err == ''
    listed = [o for o in mixed if re.search(rf'{o.lower()}(?![\w-])', parser.format_help())]
    assert not listed  # --help lists one spelling


def test_train_takes_lower_case_learning_rates():
    args = train_parser('train').parse_args(['--lr-d', '0.001', '--lr-g', '0.002'])
    assert (args.lr_D, args.lr_G) == (0.001, 0.002)


@pytest.mark.parametrize('name, near, meant', [
    ('train', '--batch', '--batch-size'), ('train', '--epochs', '--num-epochs'),
    ('train', '--outdir', '--out-dir'), ('generate', '--colums', '--ncols'),
    ('evaluate', '--sed', '--seed'), ('crosscheck', '--step', '--steps'),
    ('exercise_relu', '--swd-sample', '--swd-samples'),
    ('exercise_fashion_mnist', '--classifier-epoch', '--classifier-epochs'),
    ('gpu_check', '--warm-up', '--warmup'),
])
def test_a_near_miss_says_what_was_meant(capfd, name, near, meant):
    need = ['--params', 'x'] if name in ('generate', 'evaluate') else []
    code, out, err = exits(capfd, name, *need, near, '64')
    prog = PROGS.get(name, name)
    assert code == 2 and out == ''
    assert err == (f'{prog}: error: unrecognized arguments: {near} 64; did you mean {meant}? '
                   '(see --help)\n')


def test_abbreviations_stay_refused(capfd):
    code, _, err = exits(capfd, 'train', '--batch-si', '8')
    assert code == 2 and 'did you mean --batch-size?' in err


# ------------------------------------------------------------------------- --device and its errors

@pytest.mark.parametrize('name', list(MAINS))
def test_a_bad_device_is_argparses_one_line(capfd, name):
    need = ['--params', 'x'] if name in ('generate', 'evaluate') else []
    code, out, err = exits(capfd, name, *need, '--device', 'gpu0')
    assert code == 2 and out == ''
    several = (', gpu:N or several such as gpu:0,gpu:1' if name.startswith('train') else
               ' or gpu:N')
    assert err == (f'{PROGS.get(name, name)}: error: argument --device: expected auto, cpu, '
                   f'cpu:N, gpu{several}, got \'gpu0\' (see --help)\n')


def test_a_missing_gpu_names_the_flag_on_the_command_line_only(tmp_path, capfd):
    if d2l_dcgan.gpu.is_cuda_build():
        pytest.skip('a CUDA build of MXNet')
    with pytest.raises(ArgumentError) as e:
        select_device('gpu:1')
    assert e.value.arg == 'device' and '--' not in str(e.value)
    assert str(e.value).startswith('argument device: gpu:1: MXNet sees 0 GPU(s)')
    code = cli.generate_main(['--params', str(tmp_path / 'x'), '--device', 'gpu:1', '--out',
                              str(tmp_path / 'g.png')], prog='generate')
    err = capfd.readouterr().err
    assert code == 2 and err.startswith('generate: error: argument --device: gpu:1: MXNet sees '
                                        '0 GPU(s)') and err.endswith('(see --help)\n')


# ------------------------------------------------------------------------- --help

@pytest.mark.parametrize('name', list(MAINS))
def test_help_is_grouped_with_short_metavars_and_examples(capfd, name):
    code, out, err = exits(capfd, name, '--help')
    assert code == 0 and err == ''
    prog = PROGS.get(name, name)
    epilog = out[out.index('\nexamples:\n'):].splitlines()[2:]
    commands = [line for line in epilog if line.lstrip() and not line.lstrip().startswith('#')]
    assert len(commands) >= 2 and all(prog in line for line in commands), epilog
    # metavars are N, X, DIR, FILE or a word, never a dest such as BATCH_SIZE or N_G
    metavars = set(re.findall(r'--[\w-]+ ([A-Z][A-Z_]*)\b', out))
    assert metavars and not {m for m in metavars if '_' in m}, metavars
    if name in ('train', 'exercise_relu', 'exercise_fashion_mnist'):
        assert re.search(r'^data:$', out, re.M) and out.count(':\n  --') >= 3  # groups


def test_train_help_says_what_the_flags_do_today(capfd):
    _, out, _ = exits(capfd, 'train', '--help')
    text = ' '.join(out.split())
    resume = text[text.index('--resume DIR'):text.index('--checkpoint-every')]
    assert '--budget' in resume
    workers = text[text.index('--num-workers N'):]
    assert 'decoded-image cache' in workers[:400]
    assert len(out.splitlines()) < 140


# ------------------------------------------------------------------------- below the command line

COMMAND_LINE = {'flags.py', 'cli.py', 'crosscheck.py', '__main__.py'}  # and commands/


def lower_modules():
    return sorted(p for p in PACKAGE.glob('*.py') if p.name not in COMMAND_LINE)


def flag_strings(path):
    """(line, text) of every string in `path`, docstrings aside, that names a flag."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings and re.search(r'(?<![\w-])--[a-zA-Z]', node.value)]


def test_no_message_below_the_command_line_names_a_flag():
    assert len(lower_modules()) >= 15
    found = {p.name: flag_strings(p) for p in lower_modules()}
    assert not {name: lines for name, lines in found.items() if lines}
    # the check sees a flag where one is: in the command line's own modules
    assert flag_strings(PACKAGE / 'flags.py') and flag_strings(PACKAGE / 'commands' / 'train.py')


def test_a_notebook_sees_the_argument_and_the_command_line_its_flag(tmp_path, capfd):
    out = tmp_path / 'out'
    out.mkdir()
    with RunLock(str(out)):  # another run writes there
        with pytest.raises(ArgumentError) as e:
            with RunLock(str(out)):
                pass
        assert e.value.arg == 'out_dir' and str(e.value).startswith(
            f'argument out_dir: another run (pid {os.getpid()}) is writing to {out}; wait for '
            'it or use another out_dir')
        code = cli.train_main(['--out-dir', str(out), '--device', 'cpu', '--dataset',
                               'sprites'], prog='train')
    err = capfd.readouterr().err
    assert code == 2
    assert err == (f'train: error: argument --out-dir: another run (pid {os.getpid()}) is '
                   f'writing to {out}; wait for it or use another --out-dir (see --help)\n')


def test_divergence_names_lr():
    class NoCheckpoint:
        last_checkpoint = None

    with pytest.raises(ArgumentError) as e:
        DivergenceGuard(verbose=False).rolls_back('epoch 1, step 3', math.nan, 1.0, NoCheckpoint())
    assert e.value.arg == 'lr' and str(e.value) == (
        'argument lr: training diverged at epoch 1, step 3 (loss_D nan, loss_G 1); no checkpoint '
        'was written; try a lower lr')
    assert isinstance(e.value, DCGANError)  # what notebooks and the examples catch


def test_argument_errors_survive_pickling():
    """Decode workers send their errors back pickled."""
    import pickle
    from d2l_dcgan.decode import BadImage
    for error in (ArgumentError('lr', 'too high', also=['lr_D']),
                  BadImage('a.png', 'too big', 'max_image_pixels'), BadImage('b.png', 'cut')):
        again = pickle.loads(pickle.dumps(error))
        assert (type(again), str(again), again.arg) == (type(error), str(error), error.arg)
    assert str(BadImage('b.png', 'cut')) == 'cannot read image b.png: cut'
