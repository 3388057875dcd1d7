"""Comments and docstrings name only what exists: every file, test, module and
function they name by its name is there, so the prose cannot drift from the
code unseen (issue 20 found docstrings naming a module that had moved and a
test file that no longer held the check)."""
import ast
import builtins
import importlib
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(p for d in ('d2lnets', 'tests', 'benchmarks', 'scripts') for p in (ROOT / d).rglob('*.py'))
SOURCES += sorted((ROOT / 'scripts').glob('*.sh'))
FILES = {p.relative_to(ROOT).as_posix() for p in ROOT.rglob('*') if '.git' not in p.parts and '.venv' not in p.parts
         and not any(part.startswith('.venv') for part in p.parts)}
BASENAMES = {f.rsplit('/', 1)[-1] for f in FILES}
# A path in the tree, as `d2lnets/io.py` or `docs/guarantees.md`; or one .gitignore keeps out of it.
PATH = re.compile(r'\b((?:d2lnets|tests|benchmarks|scripts|docs|notebooks)/[A-Za-z0-9_./-]*[A-Za-z0-9_])')
# A file by its name alone: `fused.py`, `test_run.py`, `meta.json`'s kin are not files of the tree.
FILE = re.compile(r'(?<![\w/.-])([A-Za-z_][A-Za-z0-9_]*\.(?:py|cc|dot|md|ipynb))\b')
TEST = re.compile(r'(?<![\w.])(test_[a-z0-9_]+)\b')
IGNORED = [line.strip().rstrip('/') for line in (ROOT / '.gitignore').read_text().splitlines() if '/' in line]
EXTENSIONS = {'h', 'py', 'json', 'jsonl', 'md', 'txt', 'params', 'onnx', 'cc', 'ipynb', 'png', 'dot', 'csv', 'html'}
PLACEHOLDERS = {'NAME', 'CMD', 'ARGS', 'PREFIX'}
# `module.name` with module one of d2lnets' own: `runs.train_run`, `distributed.join`, `io.atomic_write`.
DOTTED = re.compile(r'(?<![\w.])((?:d2lnets\.)?(?:[a-z_][a-z0-9_]*\.)*[a-z_][a-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*)\b')
# A Sphinx reference, the role (func, meth, class, mod, data...) then the name in backquotes: a name of
# this module (set_params), of this package (.zoo.find_weights), of d2lnets (d2lnets.registry.Recipe),
# an attribute of a class (RunConfig.to_meta) or a name outside (mx.sym.Symbol.get_internals).
ROLE = re.compile(r':(func|meth|class|mod|data|attr|exc|obj):`[~!]?([\w.]+?)(?:\(\))?`')
ALIASES = {'mx': 'mxnet', 'np': 'numpy', 'nd': 'mxnet.nd', 'gluon': 'mxnet.gluon', 'nn': 'mxnet.gluon.nn'}


def prose(path: Path):
    """(line, text) of every comment and docstring in ``path`` (a shell script's ``#`` lines)."""
    text = path.read_text()
    if path.suffix == '.sh':
        yield from ((i, line) for i, line in enumerate(text.splitlines(), 1) if line.lstrip().startswith('#'))
        return
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            yield tok.start[0], tok.string
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield (node.body[0].lineno, doc)


def defined(path: Path):
    """The names ``path`` defines at any depth: functions, classes, assignments, imports, attributes set."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split('.')[0] for a in node.names)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


MODULES = {}      # d2lnets' modules by dotted name and by last part: {'runs': [Path], 'd2lnets.training.runs': [..]}
for p in sorted((ROOT / 'd2lnets').rglob('*.py')):
    parts = p.relative_to(ROOT).with_suffix('').parts
    parts = parts[:-1] if parts[-1] == '__init__' else parts
    for i in range(len(parts)):
        MODULES.setdefault('.'.join(parts[i:]), []).append(p)
TESTS = set().union(*(defined(p) for p in (ROOT / 'tests').rglob('*.py')))
TESTS |= {p.stem for p in (ROOT / 'tests').glob('*.py')}


def _outside(module: str, attr: str) -> bool:
    # `io.StringIO`, `nn.Dense`: a module of the standard library's or MXNet's of that name.
    for name in (module, 'mxnet.' + module, 'mxnet.gluon.' + module):
        try:
            if hasattr(importlib.import_module(name), attr):
                return True
        except ImportError:
            pass
    return False


def _importable(name: str) -> bool:
    # A name outside d2lnets (`mx.sym.Symbol.get_internals`, `numpy.ndarray`): its module imports, and has it.
    parts = name.split('.')
    parts[0] = ALIASES.get(parts[0], parts[0])
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module('.'.join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def _listed(path: Path):
    """The names a module gives by a table: the keys of its dicts (d2lnets/__init__.py's lazy exports)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Dict):
            names |= {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    return names


def _has(files, names) -> bool:
    return all(any(n in defined(f) or n in _listed(f) for f in files) for n in names)


def reference_exists(path: Path, role: str, name: str) -> bool:
    """Whether the Sphinx reference ``:role:`name``` in ``path`` names what exists: a d2lnets module
    (by its path on disk) and the attributes in it (by its source: nothing of it is imported)."""
    if name.startswith('.'):        # relative to the package of ``path``
        package = list(path.relative_to(ROOT).parts[:-1])
        level = len(name) - len(name.lstrip('.'))
        name = '.'.join(package[:len(package) - level + 1] + [name.lstrip('.')])
    parts = name.split('.')
    if parts[0] == 'd2lnets':
        for i in range(len(parts), 0, -1):       # the longest start that is a module on disk
            where = ROOT.joinpath(*parts[:i])
            files = [f for f in (where.with_suffix('.py'), where / '__init__.py') if f.is_file()]
            if files:       # a module is a file or a package, never an attribute
                return _has(files, parts[i:]) and not (role == 'mod' and parts[i:])
        return False
    here = defined(path)
    if role != 'mod' and parts[0] in here:
        if _has([path], parts[1:]):
            return True
        # `RunConfig.to_meta` where RunConfig is imported: the module of d2lnets that defines it.
        owners = [f for f in (ROOT / 'd2lnets').rglob('*.py')
                  if re.search(r'^(class|def) %s\b' % re.escape(parts[0]), f.read_text(), re.M)]
        return any(_has([f], parts[1:]) for f in owners) or _importable(name)
    return _importable(name)


def broken(path: Path):
    for line, text in prose(path):
        where = '%s:%d' % (path.relative_to(ROOT), line)
        for name in PATH.findall(text):
            name = name.rstrip('.')
            if re.search(r'[A-Z]{3,}|\.\.\.', name) or name in FILES or any(name.startswith(i) for i in IGNORED):
                continue        # a placeholder (DATE, MACHINE, ...), there, or made by a run
            yield where, 'no file %s' % name
        for name in FILE.findall(text):
            if name not in BASENAMES:
                yield where, 'no file named %s' % name
        for name in TEST.findall(text):
            if name not in TESTS and not name.endswith('_'):
                yield where, 'no test %s' % name
        for name in DOTTED.findall(text):
            module, attr = name.rsplit('.', 1)
            module = module[len('d2lnets.'):] if module.startswith('d2lnets.') and module != 'd2lnets' else module
            if module not in MODULES or module.split('.')[0] in ('np', 'mx', 'nd', 'os', 'sys'):
                continue        # not one of d2lnets' modules
            files = MODULES[module]
            sub = any(m.endswith(module + '.' + attr) or m == module + '.' + attr for m in MODULES)
            if sub or any(attr in defined(f) for f in files) or hasattr(builtins, attr) \
                    or attr in EXTENSIONS | PLACEHOLDERS or _outside(module, attr):
                continue
            yield where, 'no %s in %s' % (attr, module)
        for role, name in ROLE.findall(text):
            if not reference_exists(path, role, name):
                yield where, 'no %s :%s:`%s`' % ('module' if role == 'mod' else 'object', role, name)


def test_the_tree_is_read():
    assert len(SOURCES) > 80 and 'runs' in MODULES and 'test_names' in TESTS


@pytest.mark.parametrize('path', SOURCES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_comments_and_docstrings_name_what_exists(path):
    found = list(broken(path))
    assert not found, '\n'.join('%s: %s' % f for f in found)


def test_a_wrong_name_is_found(tmp_path):
    bad = ROOT / 'tests' / '_names_probe.py'
    bad.write_text('# see d2lnets/fused.py, test_nothing_here and runs.no_such_function\n"""In kernels.cc."""\n'
                   'def f():\n    """:func:`launch`, :mod:`d2lnets.fused`, :class:`d2lnets.registry.Entry`,\n'
                   ':meth:`Path.nothing`, :func:`.zoo.find_weights` and :meth:`mx.nd.NDArray.nothing`;\n'
                   ':func:`f`, :mod:`d2lnets.perf.fused`,\n'
                   ':class:`d2lnets.registry.Recipe`, :func:`d2lnets.list_models`, :meth:`mx.nd.NDArray.asnumpy`\n'
                   'and :meth:`pathlib.Path.exists` exist."""\n')
    try:
        found = [why for _, why in broken(bad)]
    finally:
        bad.unlink()
    assert found == ['no file d2lnets/fused.py', 'no test test_nothing_here', 'no no_such_function in runs',
                     'no file named kernels.cc', 'no fused in d2lnets', 'no Entry in registry',
                     'no object :func:`launch`', 'no module :mod:`d2lnets.fused`',
                     'no object :class:`d2lnets.registry.Entry`', 'no object :meth:`Path.nothing`',
                     'no object :func:`.zoo.find_weights`', 'no object :meth:`mx.nd.NDArray.nothing`']
