"""The documentation site builds in strict mode and documents the public API."""
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import d2lnets

ROOT = Path(__file__).resolve().parent.parent


def test_docs_build_strict(tmp_path):
    mkdocs = Path(sys.executable).parent / 'mkdocs'
    env = dict(os.environ, NO_MKDOCS_2_WARNING='1')
    proc = subprocess.run([str(mkdocs), 'build', '--strict', '--site-dir', str(tmp_path / 'site')],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for page in ('index.html', 'networks/vgg/index.html', 'cli/index.html', 'api/index.html'):
        assert (tmp_path / 'site' / page).is_file(), page
    vgg = (tmp_path / 'site' / 'networks/vgg/index.html').read_text()
    assert 'sequential5 output shape:' in vgg and 'vgg11.svg' in vgg
    assert (tmp_path / 'site' / 'generated' / 'nin.svg').read_text().lstrip().startswith('<?xml')


def public_functions():
    for name in sorted(d2lnets._exports):
        yield name, getattr(d2lnets, name)


@pytest.mark.parametrize('name, obj', list(public_functions()))
def test_public_names_have_docstrings_and_are_in_the_api_reference(name, obj):
    assert inspect.getdoc(obj), '%s has no docstring' % name
    api = (ROOT / 'docs' / 'api.md').read_text()
    assert re.search(r'^::: d2lnets\.[\w.]+\.%s$' % name, api, re.M), '%s is missing from docs/api.md' % name


def test_every_builder_has_a_docstring():
    for name in d2lnets.list_models():
        assert inspect.getdoc(d2lnets.models.get_builder(name)), name
