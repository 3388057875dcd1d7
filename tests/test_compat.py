"""MXNet 1.9.1 on newer numpy and Python (issue 18): runtime.mxnet_compat gives
back exactly what MXNet imports from numpy<1.24 and Python<3.12, is needed
where they are gone, and changes nothing where they are not."""
import os
import subprocess
import sys

import numpy
import pytest

from d2lnets.runtime import MXNET_BEFORE_D2LNETS, mxnet_compat

SITE = [p for p in sys.path if p.endswith('site-packages')]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUMPY_LACKS_BOOL = tuple(map(int, numpy.__version__.split('.')[:2])) >= (1, 24)


def python(code, *flags):
    """Run ``code`` in a new interpreter of the running Python; (status, stdout, stderr)."""
    done = subprocess.run([sys.executable, *flags, '-c', code], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    return done.returncode, done.stdout, done.stderr


# MXNet's own uses of numpy.bool: at import (mxnet/numpy/utils.py), and when a
# list of booleans indexes an mx.np array (mxnet/numpy/multiarray.py).
USE_MXNET = ('import mxnet as mx\n'
             'a = mx.np.array([1., 2., 3.])\n'
             'print(a[[True, False, True]].asnumpy().tolist(), mx.np.bool is bool)\n')


def test_the_installed_numpy_is_one_mxnet_needs_the_shim_for():
    # The constraints pin numpy 1.26 on every Python: were it <1.24, the tests
    # below would show nothing, so this says so first.
    assert NUMPY_LACKS_BOOL, numpy.__version__


def test_mxnet_fails_without_the_shim_and_works_with_it():
    code, out, err = python(USE_MXNET)
    assert code == 1 and "module 'numpy' has no attribute 'bool'" in err, err
    code, out, err = python('import d2lnets\n' + USE_MXNET)
    assert code == 0, err
    assert out.strip() == '[1.0, 3.0] True'


@pytest.mark.skipif(sys.version_info < (3, 12), reason='Python 3.11 has distutils (CI runs this on 3.12)')
def test_without_setuptools_pth_mxnet_fails_on_3_12_and_the_shim_provides_distutils():
    # python -S skips site-packages' .pth files, setuptools' distutils hook among them.
    path = 'import sys; sys.path[:0] = %r\n' % ([ROOT] + SITE)
    code, out, err = python(path + 'import numpy; numpy.bool = bool\n' + USE_MXNET, '-S')
    assert code == 1 and "No module named 'distutils'" in err, err
    code, out, err = python(path + 'import d2lnets\n' + USE_MXNET + 'print(sys.modules["distutils"].__name__)', '-S')
    assert code == 0, err
    assert out.split('\n')[:2] == ['[1.0, 3.0] True', 'distutils']


def test_the_shim_changes_nothing_where_nothing_is_missing():
    # As on numpy<1.24 and Python<3.12: numpy has its alias, distutils imports.
    code, out, err = python(
        'import sys, numpy\n'
        'old = numpy.bool = object()\n'
        'import distutils.version\n'
        'before = dict(sys.modules)\n'
        'from d2lnets.runtime import mxnet_compat\n'
        'assert numpy.bool is old\n'
        'assert all(sys.modules.get(k) is v for k, v in before.items())\n'
        'assert not [k for k in sys.modules if k not in before and k.split(".")[0] in ("numpy", "distutils", '
        '"setuptools")]\n'
        'print(mxnet_compat())\n')
    assert (code, out, err) == (0, '[]\n', ''), err


def test_a_second_call_adds_nothing():
    assert mxnet_compat() == []
    assert numpy.bool is bool


def test_mxnet_imported_first_and_failed_is_one_line_saying_what_to_do():
    code, out, err = python('try:\n'
                            '    import mxnet\n'
                            'except AttributeError:\n'
                            '    pass\n'
                            'import d2lnets\n')
    # The traceback ends in the one line (MXNet's engine logs its start after it, at exit).
    assert code == 1 and 'ImportError: ' + MXNET_BEFORE_D2LNETS in err.splitlines(), err
    assert 'numpy' not in err.split('Traceback')[-1].split('ImportError: ')[0], err
