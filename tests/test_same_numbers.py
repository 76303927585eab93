"""tools/same-numbers, which CI runs on each Python's run: losses and weights bit for bit, the
SWD (NumPy's arithmetic, whose BLAS differs between numpy builds) within 1e-6 relative."""
import json
import subprocess
import sys

import pytest

from test_cli import REPO_ROOT


def run_folder(path, loss_D=0.5, swd=326.9434612099319, weights=b'\x00\x01'):
    path.mkdir()
    epochs = [{'epoch': 1, 'loss_D': loss_D, 'loss_G': 3.25, 'swd': swd}]
    (path / 'metrics.json').write_text(json.dumps({'epochs': epochs}))
    for name in ('net_G.params', 'net_D.params'):
        (path / name).write_bytes(weights)
    return str(path)


@pytest.mark.parametrize('change, same', [
    ({}, True),
    ({'swd': 326.94346123178724}, True),  # numpy 1.23.5 against 2.x on AVX-512, as measured
    ({'swd': 326.95}, False),
    ({'loss_D': 0.5000000000000001}, False),  # one ulp
    ({'weights': b'\x00\x02'}, False),
])
def test_same_numbers_is_exact_but_for_the_swds_last_digits(tmp_path, change, same):
    a, b = run_folder(tmp_path / 'a'), run_folder(tmp_path / 'b', **change)
    proc = subprocess.run([sys.executable, 'tools/same-numbers', a, b], cwd=REPO_ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == (0 if same else 1), proc.stdout
    assert proc.stdout.startswith('same numbers: ') == same
