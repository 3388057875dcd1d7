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


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    """The site, built once in strict mode."""
    site = tmp_path_factory.mktemp('docs') / 'site'
    mkdocs = Path(sys.executable).parent / 'mkdocs'
    env = dict(os.environ, NO_MKDOCS_2_WARNING='1')
    proc = subprocess.run([str(mkdocs), 'build', '--strict', '--site-dir', str(site)],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return site


def test_docs_build_strict(site):
    tmp_path = site.parent
    for page in ('index.html', 'networks/vgg/index.html', 'cli/index.html', 'api/index.html'):
        assert (tmp_path / 'site' / page).is_file(), page
    vgg = (tmp_path / 'site' / 'networks/vgg/index.html').read_text()
    assert 'sequential5 output shape:' in vgg and 'vgg11.svg' in vgg
    assert (tmp_path / 'site' / 'generated' / 'nin.svg').read_text().lstrip().startswith('<?xml')


# docs/explain.md's pictures: drawn by docs/hooks.py from the shipped LeNet, none committed.
EXPLAIN = ('activations', 'pullover-coat', 'filters', 'saliency', 'gradcam', 'mistakes')


def test_the_explain_page_shows_the_pictures_the_build_drew(site):
    from PIL import Image
    import numpy as np
    html = (site / 'explain' / 'index.html').read_text()
    for name in EXPLAIN:
        tag = re.search(r'<img [^>]*id="explain-%s"[^>]*>' % name, html)
        assert tag, name
        assert 'src="../generated/explain-%s.png"' % name in tag.group(0) and re.search(r'alt="[^"]{20,}"', tag.group(0))
        pixels = np.asarray(Image.open(site / 'generated' / ('explain-%s.png' % name)).convert('RGB'))
        # Not blank: a picture of many colours over most of its area.
        assert min(pixels.shape[:2]) > 300 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200, name
        assert (pixels != 255).any(axis=2).mean() > 0.2, name
    tracked = subprocess.run(['git', 'ls-files', 'docs/generated'], cwd=ROOT, capture_output=True, text=True)
    assert tracked.stdout == ''


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
