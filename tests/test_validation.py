"""The one type check of a number: ``limits.is_int`` and ``limits.is_real``,
what they take and refuse, the checks that use them, and no hand-written
check left beside them in d2lnets/."""
import ast
import math
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from d2lnets import limits

ROOT = Path(__file__).resolve().parent.parent

INTS = [0, 1, -3, 2 ** 31, 10 ** 400, np.int8(-8), np.int32(7), np.int64(2 ** 40), np.uint8(255),
        np.uint64(2 ** 64 - 1)]
NOT_INTS = [True, False, np.bool_(True), np.bool_(False), 1.0, np.float64(2.0), np.float32(3.0), '3', b'3', None,
            Fraction(3, 1), Decimal(3), 3 + 0j, [3], (3,)]
REALS = [0, -2, 1.5, -1e300, 2 ** 1023, np.int64(3), np.uint8(0), np.float16(0.5), np.float32(-1.25),
         np.float64(1e-300), Fraction(1, 3), 5e-324]
NOT_REALS = [True, False, np.bool_(True), float('nan'), float('inf'), float('-inf'), math.nan, np.float32('nan'),
             np.float64('inf'), np.float16('-inf'), 10 ** 400, -10 ** 400, '1.0', None, Decimal('1.5'), 1 + 0j,
             np.complex64(1), [1.0]]


CASES = ([('is_int', x, True) for x in INTS] + [('is_int', x, False) for x in NOT_INTS]
         + [('is_real', x, True) for x in REALS] + [('is_real', x, False) for x in NOT_REALS])


@pytest.mark.parametrize('check, x, expected', CASES, ids=['%s(%.30r)' % (c, x) for c, x, _ in CASES])
def test_is_int_and_is_real(check, x, expected):
    # is_int: Python's and numpy's integers, never a bool, a float or text; is_real: finite numbers
    # a float holds, never a bool, nan, an infinity or 10 ** 400.
    assert getattr(limits, check)(x) is expected


def test_a_bound_takes_numpy_numbers_and_gives_python_ones():
    assert limits.check('batch_size', np.int64(256)) == 256 and type(limits.check('batch_size', np.int64(256))) is int
    assert limits.check('lr', np.float32(0.5)) == 0.5 and type(limits.check('lr', np.float32(0.5))) is float
    assert limits.check_shape((np.int64(1), np.int32(1), 28, 28)) == (1, 1, 28, 28)
    with pytest.raises(ValueError, match=r'^the batch size \(`batch_size`\) must be an integer from 1 to 65536, '
                                         r'got True$'):
        limits.check('batch_size', True)
    with pytest.raises(ValueError, match=r'^the learning rate \(`lr`\) must be a number from 1e-12 to 1e\+38, '
                                         r'got nan$'):
        limits.check('lr', float('nan'))
    with pytest.raises(ValueError, match=r'must be 1 to 5 positive integers'):
        limits.check_shape((1, True, 28, 28))


def test_the_builders_checks():
    from d2lnets.models._checks import check_arguments
    from d2lnets.models.lenet import lenet
    from d2lnets.models.vgg import vgg11
    check_arguments(classes=np.int64(10), dropout=np.float32(0.5))
    for bad in (True, 0, 2.0, np.bool_(True)):
        with pytest.raises(ValueError, match=r'^classes must be a positive integer, got %s$' % re_repr(bad)):
            check_arguments(classes=bad)
    for bad in (True, float('nan'), float('inf'), 1, -0.1):
        with pytest.raises(ValueError, match=r'^dropout must be a rate in \[0, 1\), got %s$' % re_repr(bad)):
            check_arguments(dropout=bad)
    assert str(lenet(padding=np.int64(0))) == str(lenet(padding=0))
    assert str(vgg11(ratio=np.int64(4))) == str(vgg11(ratio=4))
    with pytest.raises(ValueError, match=r'^padding must be a non-negative integer, got True$'):
        lenet(padding=True)
    # Before the one check, vgg11(ratio=True) built the full VGG-11 (True // 1 == 1).
    with pytest.raises(ValueError, match=r'^ratio must be a positive integer, got True$'):
        vgg11(ratio=True)


def re_repr(x) -> str:
    import re
    return re.escape(repr(x))


def test_a_run_configuration_takes_numpy_counts_as_ints():
    from d2lnets.training.config import RunConfig
    config = RunConfig(epochs=1, lr=0.1, model='lenet', num_workers=np.int64(2))
    assert config.num_workers == 2 and type(config.num_workers) is int
    for bad in (True, 0, 2.0):
        with pytest.raises(ValueError, match=r'^num_workers must be a positive integer, got %s$' % re_repr(bad)):
            RunConfig(epochs=1, lr=0.1, model='lenet', num_workers=bad)


def test_a_jobs_checks():
    from d2lnets.training.launch.command import check_job, check_seconds
    assert check_seconds(np.float32(1.5), '--timeout') == 1.5
    assert check_seconds(np.int64(60), '--timeout') == 60.0
    check_job(np.int64(2), np.int32(1), port=np.int64(9000))
    for bad in (True, float('nan'), float('inf'), 0):
        with pytest.raises(ValueError, match=r'^--timeout must be a number of seconds above 0 and at most 2592000 '
                                             r'\(30 days\), got %s$' % re_repr(bad)):
            check_seconds(bad, '--timeout')
    with pytest.raises(ValueError, match=r'^-n must be a whole number, got True$'):
        check_job(True, 1)
    with pytest.raises(ValueError, match=r'^--port must be a port from 1 to 65535, got False$'):
        check_job(1, 1, port=False)


def test_a_shard_is_given_by_integers():
    from d2lnets.data import ArrayIter
    it = ArrayIter(np.zeros((8, 28, 28), np.uint8), np.zeros(8, np.int32), batch_size=2)
    assert it.shard(np.int64(1), np.int64(2)).num_shards == 2
    for index, count in ((True, 2), (0, True), (0.0, 2)):
        with pytest.raises(ValueError, match=r'^shard %s of %s: need 0 <= index < count$'
                                             % (re_repr(index), re_repr(count))):
            it.shard(index, count)


@pytest.mark.parametrize('field, value, why', [
    ('seed', True, 'a non-negative integer, not true'),
    ('epochs_done', 1.0, 'a non-negative integer, not 1.0'),
    ('resize', False, 'null or a positive integer, not false'),
    ('test_acc', float('nan'), 'null or a number from 0 to 1, not NaN'),
    ('test_acc', float('inf'), 'null or a number from 0 to 1, not Infinity'),
])
def test_meta_json_refuses_bools_and_non_finite_numbers(field, value, why):
    from d2lnets.weights.meta import validate
    with pytest.raises(ValueError, match=r"^x.json: the field '%s' must be %s;" % (field, why)):
        validate({field: value}, 'x.json')


def test_a_checkpoint_refuses_an_infinite_learning_rate(tmp_path):
    # json reads Infinity; before the one check a recipe's lr of Infinity passed (inf > 0).
    import json
    from d2lnets.training.checkpoint import CheckpointError, load_checkpoint
    (tmp_path / 'checkpoint').mkdir()
    (tmp_path / 'checkpoint' / 'model.params').write_bytes(b'')
    state = {'epoch': 1, 'params': 'model.params', 'history': {}, 'run': {'recipe': {}}}
    from d2lnets.training.checkpoint import HISTORY_FIELDS
    state['history'] = {k: [1] for k in HISTORY_FIELDS}
    state['run']['recipe'] = {'epochs': 1, 'batch_size': 2, 'lr': float('inf')}
    (tmp_path / 'checkpoint' / 'latest.json').write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match=r"its recipe needs a positive 'lr'"):
        load_checkpoint(tmp_path / 'checkpoint')


def _hand_checks(path: Path):
    """(line, text) of each isinstance(..., bool / int / float) and numbers.Integral / Real in ``path``."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'isinstance' \
                and len(node.args) == 2:
            kinds = node.args[1].elts if isinstance(node.args[1], ast.Tuple) else [node.args[1]]
            if any(isinstance(k, ast.Name) and k.id in ('bool', 'int', 'float') for k in kinds):
                yield node.lineno, ast.unparse(node)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == 'numbers':
            yield node.lineno, ast.unparse(node)


def test_no_hand_written_number_check_remains():
    found = ['%s:%d: %s' % (path.relative_to(ROOT), line, text)
             for path in sorted((ROOT / 'd2lnets').rglob('*.py')) if path.name != 'limits.py'
             for line, text in _hand_checks(path)]
    assert not found, 'check numbers with d2lnets.limits.is_int / is_real instead:\n' + '\n'.join(found)


def test_the_scan_finds_a_hand_written_check(tmp_path):
    path = tmp_path / 'x.py'
    path.write_text('import numbers\n'
                    'ok = isinstance(n, bool) or isinstance(n, (str, int))\n'
                    'real = isinstance(x, numbers.Real)\n'
                    'text = isinstance(s, str)\n')
    assert sorted(line for line, _ in _hand_checks(path)) == [2, 2, 3]
