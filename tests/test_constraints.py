"""The ranges (requirements*.txt, setup.py) and the exact versions make
installs (constraints.txt) agree (issue 18): every requirement, on every
Python the constraints were resolved for, is pinned to a version its range
allows, and the running venv has exactly those versions."""
import ast
import importlib.metadata
import os
import re
import sys

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Named in a range but never installed here: the GPU build (no machine here has a GPU).
NOT_INSTALLED = {'mxnet-cu112'}


def key(name: str) -> str:
    return re.sub(r'[-_.]+', '-', name).lower()


def requirement_lines(name: str):
    """The requirements of ``requirements*.txt`` file ``name``, with its ``-r`` includes."""
    for line in open(os.path.join(ROOT, name)):
        line = line.split('#')[0].strip()
        if line.startswith('-r'):
            yield from requirement_lines(line[2:].strip())
        elif line:
            yield Requirement(line)


def setup_requirements():
    """install_requires and every extra of setup.py, read without running it."""
    tree = ast.parse(open(os.path.join(ROOT, 'setup.py')).read())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, 'id', '') == 'setup')
    options = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg in ('install_requires',
                                                                                      'extras_require')}
    yield from map(Requirement, options['install_requires'])
    for extra in options['extras_require'].values():
        yield from map(Requirement, extra)


def constraints():
    """{python 'X.Y': {name: version}} of constraints.txt, for each Python it names."""
    text = open(os.path.join(ROOT, 'constraints.txt')).read()
    pythons = re.search(r'^# Resolved for Python (.*)\.$', text, re.M).group(1).split(', ')
    pins = {python: {} for python in pythons}
    for line in text.splitlines():
        if line and not line.startswith('#'):
            req = Requirement(line)
            (version,) = [s.version for s in req.specifier if s.operator == '==']
            for python in pythons:
                if req.marker is None or req.marker.evaluate(dict(default_environment(), python_version=python)):
                    pins[python][key(req.name)] = version
    return pins


RANGES = {name: list(requirement_lines(name)) for name in ('requirements.txt', 'requirements-dev.txt',
                                                           'requirements-gpu.txt')}
RANGES['setup.py'] = list(setup_requirements())


def test_the_constraints_cover_both_supported_pythons():
    assert sorted(constraints()) == ['3.11', '3.12']


@pytest.mark.parametrize('source', sorted(RANGES))
def test_every_range_allows_its_pinned_version(source):
    wrong = []
    for python, pins in sorted(constraints().items()):
        for req in RANGES[source]:
            if req.marker and not req.marker.evaluate(dict(default_environment(), python_version=python)):
                continue
            if key(req.name) in NOT_INSTALLED:
                continue
            pinned = pins.get(key(req.name))
            if pinned is None or not req.specifier.contains(pinned, prereleases=True):
                wrong.append('%s on Python %s: %s, constraints.txt has %s' % (source, python, req, pinned))
    assert not wrong, '\n'.join(wrong)


def test_the_running_environment_has_the_constrained_versions():
    python = '%d.%d' % sys.version_info[:2]
    pins = constraints()[python]
    installed = {key(d.metadata['Name']): d.version for d in importlib.metadata.distributions()}
    differ = ['%s %s (constraints.txt: %s)' % (name, installed[name], version)
              for name, version in sorted(pins.items()) if name in installed and installed[name] != version]
    assert not differ, 'this venv differs from constraints.txt; rerun make: ' + ', '.join(differ)
