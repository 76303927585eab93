"""examples/dcgan.ipynb, executed top to bottom in a real kernel with the small budget, and
judged by what a reader sees."""
import os
import re
import time

import nbformat
import pytest
from timeouts import limit

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(REPO_ROOT, 'examples', 'dcgan.ipynb')
FINAL_LINE = re.compile(
    r'^loss_D \d+\.\d{3}, loss_G \d+\.\d{3}, \d+\.\d examples/sec on cpu\(0\)$', re.M)
FIGURE = ('image/png', 'image/svg+xml')


def text_of(cell):
    return ''.join(o.get('text', '') for o in cell.outputs if o.output_type == 'stream')


def figures_of(cell):
    return [o for o in cell.outputs if o.output_type in ('display_data', 'execute_result')
            and any(k in o.get('data', {}) for k in FIGURE)]


def test_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == 'code':
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


def counting_client(*args, **kwargs):
    """An nbclient NotebookClient that also counts every figure each cell displayed, including
    those a later clear_output removed (a live figure redraws in place)."""
    from nbclient import NotebookClient

    class Client(NotebookClient):
        def output(self, outs, msg, display_id, cell_index):
            out = super().output(outs, msg, display_id, cell_index)
            if out is not None and any(k in out.get('data', {}) for k in FIGURE):
                self.figures_shown[cell_index] = self.figures_shown.get(cell_index, 0) + 1
            return out

    client = Client(*args, **kwargs)
    client.figures_shown = {}
    return client


@pytest.fixture(scope='module')
def executed(tmp_path_factory):
    """The notebook run in a fresh ipykernel (the running Python's, which sees PYTHONPATH) with a
    temporary data cache; (notebook, seconds, {cell index: figures shown})."""
    cwd = tmp_path_factory.mktemp('run') / 'examples'
    cwd.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    env = {'D2L_DCGAN_SMALL': '1', 'D2L_DCGAN_CACHE': str(cwd.parent / 'cache'),
           'MPLBACKEND': 'module://matplotlib_inline.backend_inline',
           'PYTHONPATH': os.pathsep.join(
               [REPO_ROOT] + ([os.environ['PYTHONPATH']] if os.environ.get('PYTHONPATH') else []))}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)  # the kernel inherits this process's environment
        start = time.perf_counter()
        client = counting_client(nb, timeout=limit(120), kernel_name='python3',
                                 resources={'metadata': {'path': str(cwd)}})
        client.execute()
        seconds = time.perf_counter() - start
    print(f'notebook executed in {seconds:.1f} s; figures shown per cell: {client.figures_shown}')
    return nb, seconds, client.figures_shown


def cell_with(nb, source):
    """The one code cell whose source holds `source`."""
    cells = [c for c in nb.cells if c.cell_type == 'code' and source in c.source]
    assert len(cells) == 1, source
    return cells[0]


def test_runs_top_to_bottom_in_well_under_a_minute(executed):
    nb, seconds, _ = executed
    for cell in nb.cells:
        if cell.cell_type == 'code':
            assert cell.execution_count is not None
            assert not [o for o in cell.outputs if o.output_type == 'error'], cell.source[:60]
    assert seconds < 45


def test_the_reader_sees_the_chapter(executed):
    nb, _, shown = executed
    train = cell_with(nb, 'train(net_D, net_G, data_iter, num_epochs, lr, latent_dim, device)')
    # the animator's figure: losses above, the 3x7 samples (one image) below; shown live after
    # each of the 2 epochs, and once more when the cell ends
    figure, = figures_of(train)
    svg = figure['data'].get('image/svg+xml', '')
    assert 'image/png' in figure['data'] or (svg.count('<image') == 1
                                             and len(re.findall(r'id="axes_\d+"', svg)) == 2)
    assert shown[nb.cells.index(train)] >= 2 + 1
    assert FINAL_LINE.search(text_of(train)), text_of(train)
    # the shape checks, as the chapter prints them (the small budget's widths)
    shapes = [text_of(cell_with(nb, src)).strip() for src in (
        'g_blk = G_block(20)\n', 'g_blk = G_block(20, strides=1', 'print(net_G(x)',
        'd_blk = D_block(20)', 'print(net_D(x)')]
    assert shapes == ['(2, 20, 32, 32)', '(2, 20, 4, 4)', '(1, 3, 64, 64)', '(2, 20, 8, 8)',
                      '(1, 1, 1, 1)']
    for src in ('show_images(X', 'plot_leaky_relu()', 'sample_grid(net_G', 'latent_walks('):
        assert figures_of(cell_with(nb, src)), src
