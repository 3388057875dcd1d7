"""The call path of one ``d2lnets`` command, module by module.

    python scripts/call_path.py [--warm] [--calls] predict lenet --pretrained IMAGE

``--warm`` first runs the command once in a child process, untraced, so that
what a first run does once (building the fused kernels into their cache, a
download) is not counted; ``--calls`` also prints each call between modules.
Runs the command in this process under ``sys.setprofile`` (its own output goes
to stderr) and follows the calls from one d2lnets module into another. Each
call site counts once: a call made in a loop is one. Module bodies run by
imports are left out (loading, not the command's path). Prints to stdout:

- ``modules``: how many d2lnets modules the command's calls enter;
- ``re-entries``: entries into a module beyond its first;
- ``most entries``: the module entered most often, and how often;
- ``climbs``: calls from a module into one of its users (a module that imports
  it, directly or through others, also inside functions): back up the layering;
- ``climbs by pair`` and ``entries by module``: where those counts come from;
- ``helpers``: the modules the command enters that call no other d2lnets module
  from there (``io``, ``limits``, ``datasets``, ...): each entry into one returns
  at once, so the flow does not pass through it; ``most entries of a flow
  module``: the most often entered of the others, the modules the flow passes
  through, which issue 20's goal of at most two entries is about. Helpers are
  many modules' one way to do a thing (one number check, one atomic write):
  they are entered once per module that needs them, and counted apart.

benchmarks/results/call_path.txt records its figures for ``predict``.
"""
import ast
import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Set, Tuple

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / 'd2lnets'

Frame = Tuple[str, str]   # (module, function)


def module_name(path: Path, root: Path = ROOT) -> str:
    """``d2lnets/weights/load.py`` -> ``'d2lnets.weights.load'``; a package's ``__init__`` is the package."""
    parts = list(path.relative_to(root).with_suffix('').parts)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def imports_of(path: Path, modules: Set[str], root: Path = ROOT) -> Set[str]:
    """The modules among ``modules`` the file at ``path`` imports, anywhere in it (inside functions too)."""
    name = module_name(path, root)
    package = name.split('.') if path.name == '__init__.py' else name.split('.')[:-1]
    used = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = '.'.join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ''
            for alias in node.names:
                # `from . import zoo` imports the module zoo; `from .load import x` the module load.
                target = base + '.' + alias.name if base + '.' + alias.name in modules else base
                if target in modules:
                    used.add(target)
        elif isinstance(node, ast.Import):
            used.update(alias.name for alias in node.names if alias.name in modules)
    used.discard(name)
    return used


def import_graph(package: Path = PACKAGE) -> Dict[str, Set[str]]:
    """{module: the modules of ``package`` it imports}, imports inside functions included.
    Python's implicit import of a parent package is no edge."""
    paths = {module_name(p, package.parent): p for p in package.rglob('*.py')}
    return {name: imports_of(path, set(paths), package.parent) for name, path in paths.items()}


def users_of(graph: Dict[str, Set[str]]) -> Dict[str, Set[str]]:
    """{module: every module that imports it, directly or through others}."""
    users: Dict[str, Set[str]] = {}
    for start in graph:
        seen: Set[str] = set()
        todo = [start]
        while todo:
            for used in graph.get(todo.pop(), ()):
                if used not in seen:
                    seen.add(used)
                    todo.append(used)
        for used in seen:
            users.setdefault(used, set()).add(start)
    return users


def trace(argv: List[str]) -> Tuple[str, List[Tuple[Frame, Frame]]]:
    """Run ``d2lnets ARGV`` here; returns the first d2lnets module that runs,
    and each distinct call (caller, callee) from one module into another."""
    from d2lnets import cli
    root = str(PACKAGE)
    calls: List[Tuple[Frame, Frame]] = []
    seen: Set[Tuple[Frame, Frame]] = set()
    stack: List[Frame] = []   # the d2lnets frames on the stack
    first: List[str] = []
    importing = [0]           # depth of module bodies being run

    def profile(frame, event, arg):
        if event not in ('call', 'return'):
            return
        code = frame.f_code
        if not code.co_filename.startswith(root):
            return
        if code.co_name == '<module>':
            importing[0] += 1 if event == 'call' else -1
            return
        if importing[0]:
            return
        if event == 'return':
            if stack:
                stack.pop()
            return
        here = (module_name(Path(code.co_filename)), code.co_name)
        if not first:
            first.append(here[0])
        if stack and stack[-1][0] != here[0] and (stack[-1], here) not in seen:
            seen.add((stack[-1], here))
            calls.append((stack[-1], here))
        stack.append(here)

    sys.setprofile(profile)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            cli.main(argv)
    except SystemExit:
        pass
    finally:
        sys.setprofile(None)
    return first[0], calls


def short(module: str) -> str:
    return module[len('d2lnets.'):] if module.startswith('d2lnets.') else module


def figures(first: str, calls: List[Tuple[Frame, Frame]]) -> Dict[str, str]:
    """The figures this module's docstring describes, as text by name."""
    users = users_of(import_graph())
    entries: Dict[str, int] = {first: 1}
    for _, (module, _) in calls:
        entries[module] = entries.get(module, 0) + 1
    pairs = [(a[0], b[0]) for a, b in calls]
    climbs = [(a, b) for a, b in pairs if b in users.get(a, ())]
    by_pair = sorted(((climbs.count(p), p) for p in set(climbs)), key=lambda c: (-c[0], c[1]))
    most = max(entries.items(), key=lambda kv: kv[1])
    callers = {a for a, _ in pairs}
    helpers = sorted(m for m in entries if m not in callers)
    flow = {m: n for m, n in entries.items() if m in callers}
    most_flow = max(flow.items(), key=lambda kv: kv[1])
    return {'modules': str(len(entries)),
            're-entries': str(sum(n - 1 for n in entries.values())),
            'most entries': '%s (%d)' % (short(most[0]), most[1]),
            'climbs': str(len(climbs)),
            'climbs by pair': ', '.join('%s->%s %d' % (short(a), short(b), n) for n, (a, b) in by_pair) or 'none',
            'entries by module': ', '.join('%s %d' % (short(m), n) for m, n in
                                           sorted(entries.items(), key=lambda kv: (-kv[1], kv[0]))),
            'helpers': ', '.join('%s %d' % (short(m), entries[m]) for m in
                                 sorted(helpers, key=lambda m: (-entries[m], m))),
            'most entries of a flow module': '%s (%d)' % (short(most_flow[0]), most_flow[1])}


def main(argv: List[str]) -> None:
    options = set()
    while argv and argv[0] in ('--warm', '--calls'):
        options.add(argv.pop(0))
    if not argv:
        raise SystemExit('usage: python scripts/call_path.py [--warm] [--calls] COMMAND [ARGS...], '
                         'e.g. predict lenet --pretrained IMAGE')
    if '--warm' in options:
        subprocess.run([sys.executable, '-m', 'd2lnets'] + argv, cwd=str(ROOT), stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    first, calls = trace(argv)
    for name, value in figures(first, calls).items():
        print('%s: %s' % (name, value))
    if '--calls' in options:
        for (a, f), (b, g) in calls:
            print('  %s.%s -> %s.%s' % (short(a), f, short(b), g))


if __name__ == '__main__':
    sys.path.insert(0, str(ROOT))
    main(sys.argv[1:])
