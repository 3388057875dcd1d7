"""One home for each data set (issue 20, point 3): d2lnets/datasets.py holds the
table, and no other module of d2lnets compares a data set's name; the weights
carry their categories and preprocessing, as torchvision's do."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from d2lnets import datasets
from d2lnets.datasets import DATASETS, FASHION_MNIST_FORM, IMAGENET_EVAL
from d2lnets.registry import entry

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / 'd2lnets'
NAMES = {'imagenet', 'fashion-mnist', 'mnist'}
TABLE = PACKAGE / 'datasets.py'


def _names_in(node):
    """The data set names among the string literals of ``node`` (a constant, or a list, tuple or set of them)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value} & NAMES
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return set().union(*(_names_in(e) for e in node.elts)) if node.elts else set()
    return set()


def name_comparisons(source: str):
    """(line, names) of each comparison (==, !=, in, not in, is) with a data set's name as a literal,
    and each dict literal keyed by them (a table of one's own)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            names = set().union(*(_names_in(n) for n in [node.left] + node.comparators))
        elif isinstance(node, ast.Dict):
            names = set().union(*(_names_in(k) for k in node.keys if k is not None)) if node.keys else set()
        else:
            continue
        if names:
            found.append((node.lineno, sorted(names)))
    return found


def test_the_scan_finds_what_it_looks_for():
    source = ("a = x == 'imagenet'\nb = y in ('mnist', 'fashion-mnist')\nc = 'imagenet' != z\n"
              "d = {'mnist': 1}\ne = x == 'lenet'\nf = g('imagenet')\n")
    assert name_comparisons(source) == [(1, ['imagenet']), (2, ['fashion-mnist', 'mnist']), (3, ['imagenet']),
                                        (4, ['mnist'])]


def test_no_module_but_the_table_compares_a_data_sets_name():
    found = {}
    for path in sorted(PACKAGE.rglob('*.py')):
        if path != TABLE:
            hits = name_comparisons(path.read_text())
            if hits:
                found[path.relative_to(ROOT).as_posix()] = hits
    assert found == {}


def test_the_table_holds_each_data_sets_facts():
    assert list(DATASETS) == ['fashion-mnist', 'mnist', 'imagenet']
    fmnist, mnist, imagenet = DATASETS.values()
    assert (fmnist.title, mnist.title, imagenet.title) == ('Fashion-MNIST', 'MNIST', 'ImageNet')
    assert fmnist.classes[9] == 'ankle boot' and mnist.classes == [str(d) for d in range(10)]
    assert (fmnist.input_shape, imagenet.input_shape) == ([1, 1, 28, 28], [1, 3, 224, 224])
    assert fmnist.preprocessing is mnist.preprocessing is FASHION_MNIST_FORM
    assert imagenet.preprocessing is IMAGENET_EVAL
    assert (IMAGENET_EVAL.resize, IMAGENET_EVAL.size, IMAGENET_EVAL.mode) == (256, 224, 'RGB')
    assert fmnist.normalization == {'scale': 1 / 255, 'mean': 0.0, 'std': 1.0}
    assert imagenet.normalization == {'scale': 1 / 255, 'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225]}
    assert [row.top for row in DATASETS.values()] == [3, 3, 5]
    assert datasets.TRAINABLE == ('fashion-mnist', 'mnist') and not imagenet.trainable
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'; known: fashion-mnist, mnist"):
        datasets.for_training('imagenet')
    with pytest.raises(ValueError, match="unknown dataset 'cifar'; d2lnets knows fashion-mnist, mnist, imagenet"):
        datasets.get('cifar')


def test_imagenets_classes_are_gluoncvs_loaded_when_asked():
    from gluoncv.data import ImageNet1kAttr
    names = DATASETS['imagenet'].classes
    assert names == list(ImageNet1kAttr().classes) and len(names) == 1000 and names[281] == 'tabby'


def test_weights_carry_their_categories_and_preprocessing():
    lenet, vgg = entry('lenet').pretrained(), entry('vgg11').pretrained()
    assert lenet.categories == lenet.classes == DATASETS['fashion-mnist'].classes
    assert lenet.preprocessing is FASHION_MNIST_FORM and vgg.preprocessing is IMAGENET_EVAL
    assert len(vgg.categories) == 1000


def test_the_table_imports_without_mxnet_or_anything_of_d2lnets():
    code = ('import sys; sys.modules["mxnet"] = None\n'
            'import d2lnets\n'      # the package's own start (runtime, io), before the table
            'before = set(sys.modules)\n'
            'import d2lnets.datasets\n'
            'new = sorted(m for m in set(sys.modules) - before if m.startswith("d2lnets"))\n'
            'assert new == ["d2lnets.datasets"], new\n')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr
