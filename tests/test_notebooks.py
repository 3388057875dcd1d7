"""Every notebook runs top to bottom in a real Jupyter kernel (fast mode), and
its printout still equals the lecture's golden printout."""
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import GOLDEN, fold

NOTEBOOKS = Path(__file__).resolve().parent.parent / 'notebooks'
# notebook -> golden printout of its cell tagged 'printout'
PRINTOUTS = {'lenet': 'lenet', 'alexnet': 'alexnet', 'vgg': 'vgg11', 'nin': 'nin'}


def test_every_notebook_is_tested():
    assert sorted(p.stem for p in NOTEBOOKS.glob('*.ipynb')) == sorted(
        ['lenet', 'alexnet', 'vgg', 'nin', 'complexity', 'pretrained'])


def test_committed_outputs_are_the_notebooks_own():
    # Outputs come from a real run of the cells above them: every code cell ran, in order.
    for path in NOTEBOOKS.glob('*.ipynb'):
        nb = nbformat.read(str(path), as_version=4)
        counts = [c.execution_count for c in nb.cells if c.cell_type == 'code']
        assert counts == list(range(1, len(counts) + 1)), path.name
        assert not any(o.get('output_type') == 'error' for c in nb.cells if c.cell_type == 'code'
                       for o in c.outputs), path.name


def stdout_of(cell) -> str:
    return ''.join(o.get('text', '') for o in cell.outputs if o.get('name') == 'stdout')


@pytest.mark.parametrize('name', sorted(p.stem for p in NOTEBOOKS.glob('*.ipynb')))
def test_notebook_runs_in_fast_mode(name, tmp_path):
    nb = nbformat.read(str(NOTEBOOKS / (name + '.ipynb')), as_version=4)
    # The project's own environment: the kernel runs this Python, with d2lnets installed.
    os.environ['D2LNETS_FAST'] = '1'
    try:
        NotebookClient(nb, timeout=600, kernel_name='python3', resources={'metadata': {'path': str(tmp_path)}},
                       extra_arguments=['--HistoryManager.enabled=False']).execute(
            env=dict(os.environ, D2LNETS_FAST='1'))
    finally:
        del os.environ['D2LNETS_FAST']
    if name in PRINTOUTS:
        cells = [c for c in nb.cells if 'printout' in c.metadata.get('tags', [])]
        assert len(cells) == 1
        assert fold(stdout_of(cells[0])) == fold((GOLDEN / (PRINTOUTS[name] + '.txt')).read_text())


def test_kernel_is_this_environment(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('import sys, d2lnets; print(sys.executable)')])
    NotebookClient(nb, timeout=120, kernel_name='python3').execute()
    assert Path(stdout_of(nb.cells[0]).strip()).resolve() == Path(sys.executable).resolve()
