"""One home each (issue 20, point 5): the type aliases are defined in
d2lnets/types.py alone, and only d2lnets/io.py replaces, renames or deletes a file
(the exporter's set of files goes through ``io.replace_all``, every deletion
through ``io.remove_own``)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / 'd2lnets').rglob('*.py'))
ALIASES = {'Ctx', 'CtxOrText', 'PathLike', 'Shape'}


def _assigned(tree):
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
        for target in targets:
            for name in ast.walk(target):
                if isinstance(name, ast.Name) and isinstance(name.ctx, ast.Store):
                    yield node.lineno, name.id
        if isinstance(node, getattr(ast, 'TypeAlias', ())):     # `type X = ...`: Python 3.12 and newer
            yield node.lineno, node.name.id


def _calls(tree, names):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Name) and (node.func.value.id, node.func.attr) in names:
            yield node.lineno, '%s.%s' % (node.func.value.id, node.func.attr)


def test_the_type_aliases_are_defined_in_types_alone():
    homes = {}
    for path in SOURCES:
        for line, name in _assigned(ast.parse(path.read_text())):
            if name in ALIASES:
                homes.setdefault(name, []).append('%s:%d' % (path.relative_to(ROOT), line))
    assert homes == {name: ['d2lnets/types.py:%d' % line for line, n in _assigned(
        ast.parse((ROOT / 'd2lnets' / 'types.py').read_text())) if n == name] for name in ALIASES}
    assert sorted(homes) == sorted(ALIASES)


def test_only_io_replaces_or_renames_files():
    found = ['%s:%d: %s' % (path.relative_to(ROOT), line, call) for path in SOURCES if path.name != 'io.py'
             for line, call in _calls(ast.parse(path.read_text()), {('os', 'replace'), ('os', 'rename'),
                                                                    ('shutil', 'move')})]
    assert not found, 'replace files through d2lnets.io (atomic_write, replace_all):\n' + '\n'.join(found)
    assert list(_calls(ast.parse((ROOT / 'd2lnets' / 'io.py').read_text()), {('os', 'replace')}))


def test_the_exporter_replaces_its_files_through_io():
    tree = ast.parse((ROOT / 'd2lnets' / 'deploy' / 'export.py').read_text())
    called = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    imported = {a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module == 'io'
                for a in node.names}
    assert 'replace_all' in called and 'replace_all' in imported


def test_only_io_deletes_files_or_folders():
    # Everything else deletes through io.remove_own, which refuses a link put in the place of what it made.
    deleting = {('os', 'remove'), ('os', 'unlink'), ('os', 'rmdir'), ('os', 'removedirs'), ('shutil', 'rmtree')}
    found = ['%s:%d: %s' % (path.relative_to(ROOT), line, call) for path in SOURCES if path.name != 'io.py'
             for line, call in _calls(ast.parse(path.read_text()), deleting)]
    found += ['%s:%d: .%s()' % (path.relative_to(ROOT), node.lineno, node.func.attr) for path in SOURCES
              if path.name != 'io.py' for node in ast.walk(ast.parse(path.read_text()))
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)     # Path.unlink, Path.rmdir
              and node.func.attr in ('unlink', 'rmdir') and not (isinstance(node.func.value, ast.Name)
                                                                 and node.func.value.id == 'os')]
    assert not found, 'delete through d2lnets.io.remove_own:\n' + '\n'.join(found)
