"""The packages' arrows are the ones docs/architecture.dot draws: every import
of one d2lnets package (or top-level module) by another has its arrow there,
and the arrows form no cycle."""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / 'd2lnets'
# The package's own plumbing, not architecture: its lazy public names, the
# `python -m d2lnets` entry, and the version everybody may read.
IGNORED = {'d2lnets', '__main__', '_version', '__version__', 'MISSING_MXNET'}


def declared():
    text = (ROOT / 'docs' / 'architecture.dot').read_text()
    return set(re.findall(r'(\w+) -> (\w+)', text))


def unit(module: str) -> str:
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else 'd2lnets'


def imported():
    """{(user, used): [modules]} over every import, also those inside functions."""
    edges = {}
    for path in PACKAGE.rglob('*.py'):
        parts = list(path.relative_to(ROOT).with_suffix('').parts)
        package = parts[:-1] if path.name != '__init__.py' else parts[:-1]
        user = unit('.'.join(parts if path.name != '__init__.py' else parts[:-1]))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = '.'.join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
                targets = [base] if node.module else [base + '.' + a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or '').startswith('d2lnets'):
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith('d2lnets')]
            else:
                continue
            for target in targets:
                used = unit(target)
                if used != user and not {user, used} & IGNORED:
                    edges.setdefault((user, used), []).append('.'.join(parts))
    return edges


def test_every_import_has_its_arrow_in_the_diagram():
    missing = {edge: who for edge, who in imported().items() if edge not in declared()}
    assert not missing, 'imports with no arrow in docs/architecture.dot: %s' % missing


def test_every_arrow_is_an_import_and_there_is_no_cycle():
    arrows = declared()
    assert arrows == set(imported()), 'arrows no module imports: %s' % (arrows - set(imported()))
    graph = {}
    for a, b in arrows:
        graph.setdefault(a, set()).add(b)
    done, path = set(), []

    def visit(node):
        assert node not in path, 'cycle: %s' % ' -> '.join(path[path.index(node):] + [node])
        if node in done:
            return
        path.append(node)
        for nxt in graph.get(node, ()):
            visit(nxt)
        path.pop()
        done.add(node)
    for node in list(graph):
        visit(node)


def test_deploy_imports_without_mxnet():
    import subprocess
    import sys
    modules = sorted(p.stem for p in (PACKAGE / 'deploy').glob('*.py') if p.stem != '__init__')
    assert {'export', 'images', 'onnx_model', 'predict'} <= set(modules)
    code = ('import sys; sys.modules["mxnet"] = None\n'
            'import importlib\n'
            'for m in %r: importlib.import_module("d2lnets.deploy." + m)\n'
            'assert "mxnet" not in [k for k, v in sys.modules.items() if v is not None]\n' % modules)
    proc = subprocess.run([sys.executable, '-W', 'ignore', '-c', code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
