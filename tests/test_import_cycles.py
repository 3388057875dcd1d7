"""No import cycle among d2lnets' modules (issue 20, point 1).

tests/test_architecture.py checks the packages' arrows; this checks every
module, with the imports inside functions (they run, only later), so a cycle
inside one package (weights.load <-> weights.zoo, say) is found too. Edges are
what a module's own import statements name: `from . import zoo` imports
weights.zoo, `from .load import x` weights.load, `from . import Weights` the
package d2lnets.weights. Python's implicit import of a parent package is not an
edge (every module would then be in a cycle with its package's __init__).
The graph is scripts/call_path.py's import_graph, the one that counts climbs.
"""
import sys
from pathlib import Path
from typing import Dict, List, Set

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'scripts'))
from call_path import import_graph  # noqa: E402  (the one reader of d2lnets' imports; its climbs use it too)


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_the_cycle_finder_finds_cycles_and_only_cycles():
    assert cycles({'a': {'b'}, 'b': {'a'}, 'c': {'a'}}) == [['a', 'b']]
    assert cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': set()}) == [['a', 'b', 'c']]
    assert cycles({'a': {'b', 'c'}, 'b': {'c'}, 'c': set()}) == []


def test_the_graph_reads_relative_and_function_level_imports(tmp_path):
    pkg = tmp_path / 'd2lnets'
    (pkg / 'weights').mkdir(parents=True)
    (pkg / '__init__.py').write_text('')
    (pkg / 'io.py').write_text('')
    (pkg / 'weights' / '__init__.py').write_text('def f():\n    from .shipped import g\n')
    (pkg / 'weights' / 'shipped.py').write_text('from ..io import sha1sum\nfrom . import WEIGHTS_DIR\n')
    (pkg / 'weights' / 'zoo.py').write_text('from .load import read_params\nimport d2lnets.io\n')
    (pkg / 'weights' / 'load.py').write_text('def f():\n    from . import zoo\n')
    graph = import_graph(pkg)
    assert graph == {'d2lnets': set(), 'd2lnets.io': set(),
                     'd2lnets.weights': {'d2lnets.weights.shipped'},
                     'd2lnets.weights.shipped': {'d2lnets.io', 'd2lnets.weights'},
                     'd2lnets.weights.zoo': {'d2lnets.weights.load', 'd2lnets.io'},
                     'd2lnets.weights.load': {'d2lnets.weights.zoo'}}
    assert cycles(graph) == [['d2lnets.weights', 'd2lnets.weights.shipped'],
                             ['d2lnets.weights.load', 'd2lnets.weights.zoo']]


def test_no_module_of_d2lnets_is_in_an_import_cycle():
    graph = import_graph()
    assert {'d2lnets.weights.load', 'd2lnets.weights.zoo', 'd2lnets.models.loading'} <= set(graph)
    found = cycles(graph)
    assert not found, 'import cycles among modules: %s' % '; '.join(' <-> '.join(c) for c in found)
