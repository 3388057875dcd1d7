"""The graph rewrite: in a network's symbol JSON, each Convolution -> sigmoid ->
2x2/2 average Pooling chain (LeNet's blocks) becomes one node of the fused
operator that :mod:`d2lnets.perf.kernels_build` builds.

It reads and edits the JSON graph only: it neither builds, loads nor runs
anything. A chain is fused only when nothing else reads its inner results, its
convolution is one the operator is compiled for (:data:`KERNELS`, stride 1,
square kernel and padding, with a bias) and its parameters may have their
gradients written by it.
"""
from typing import Any, Dict, List, Optional, Tuple

from .kernels_build import KERNELS, OP_NAME

def _tuple(text: Optional[str], default: Tuple[int, ...]) -> Tuple[int, ...]:
    if text in (None, 'None', '()'):
        return default
    return tuple(int(v) for v in text.strip('()[] ').split(',') if v.strip())


def _fusable_conv(attrs: Dict[str, str]) -> Optional[Dict[str, str]]:
    """The fused operator's attributes for a Convolution it can replace, else None."""
    kernel = _tuple(attrs.get('kernel'), ())
    pad = _tuple(attrs.get('pad'), (0, 0))
    if (len(kernel) != 2 or kernel[0] != kernel[1] or kernel[0] not in KERNELS or len(pad) != 2
            or pad[0] != pad[1] or _tuple(attrs.get('stride'), (1, 1)) != (1, 1)
            or _tuple(attrs.get('dilate'), (1, 1)) != (1, 1) or attrs.get('num_group', '1') != '1'
            or attrs.get('no_bias', 'False') != 'False' or attrs.get('layout', 'NCHW') not in ('NCHW', 'None')):
        return None
    return {'kernel': str(kernel[0]), 'pad': str(pad[0]), 'num_filter': attrs['num_filter']}


def _is_avgpool_2x2(attrs: Dict[str, str]) -> bool:
    return (attrs.get('pool_type') == 'avg' and _tuple(attrs.get('kernel'), ()) == (2, 2)
            and _tuple(attrs.get('stride'), (1, 1)) == (2, 2) and _tuple(attrs.get('pad'), (0, 0)) == (0, 0)
            and attrs.get('global_pool', 'False') == 'False'
            and attrs.get('pooling_convention', 'valid') == 'valid'
            and attrs.get('layout', 'NCHW') in ('NCHW', 'None'))


def _find_chains(graph: Dict[str, Any], fusable_params: Optional[set], inputs: Tuple[str, ...]
                 ) -> List[Tuple[int, int, int, Dict[str, str]]]:
    """(pooling, activation, convolution) node indices and the fused operator's
    attributes of each fusable chain."""
    nodes = graph['nodes']
    readers: Dict[int, int] = {}
    for node in nodes:
        for src, _, _ in node['inputs']:
            readers[src] = readers.get(src, 0) + 1
    for src, _, _ in graph['heads']:
        readers[src] = readers.get(src, 0) + 2  # a graph output is never fused away
    chains = []
    for i, node in enumerate(nodes):
        if node['op'] != 'Pooling' or not _is_avgpool_2x2(node.get('attrs', {})):
            continue
        act = node['inputs'][0][0]
        if nodes[act]['op'] != 'Activation' or nodes[act].get('attrs', {}).get('act_type') != 'sigmoid' \
                or readers.get(act) != 1 or node['inputs'][0][1] != 0:
            continue
        conv = nodes[act]['inputs'][0][0]
        if nodes[conv]['op'] != 'Convolution' or readers.get(conv) != 1:
            continue
        attrs = _fusable_conv(nodes[conv].get('attrs', {}))
        data, weight, bias = (e[0] for e in nodes[conv]['inputs'])
        names = {nodes[weight]['name'], nodes[bias]['name']}
        if attrs is None or (fusable_params is not None and not names <= fusable_params):
            continue
        # The network's input needs no gradient: skip computing one.
        is_input = nodes[data]['op'] == 'null' and nodes[data]['name'] in inputs
        attrs['need_data_grad'] = '0' if is_input else '1'
        chains.append((i, act, conv, attrs))
    return chains


def fusable_chains(graph: Dict[str, Any], fusable_params: Optional[set] = None,
                   inputs: Tuple[str, ...] = ('data',)) -> List[Dict[str, Any]]:
    """The chains :func:`fuse_graph` would fuse: per chain, the convolution's
    name, the fused operator's attributes and the name of the chain's input
    as :meth:`mx.sym.Symbol.get_internals` lists it."""
    nodes = graph['nodes']
    out = []
    for _, _, conv, attrs in _find_chains(graph, fusable_params, inputs):
        src, index, _ = nodes[conv]['inputs'][0]
        data = nodes[src]['name'] if nodes[src]['op'] == 'null' else '%s_output%s' % (
            nodes[src]['name'], '' if index == 0 else index)
        out.append({'name': nodes[conv]['name'], 'attrs': dict(attrs), 'input': data})
    return out


def fuse_graph(graph: Dict[str, Any], fusable_params: Optional[set] = None, inputs: Tuple[str, ...] = ('data',),
               op: str = OP_NAME, only: Optional[set] = None, train: bool = True) -> int:
    """Rewrite a symbol's JSON graph in place: each Convolution -> sigmoid ->
    2x2/2 average Pooling chain whose inner results nothing else reads becomes
    one ``op`` node (a variant's operator, see :func:`.kernels_build.op_name`).
    ``fusable_params``: the parameter names the operator may compute gradients
    for (None: all); ``inputs``: the graph's inputs, which need no gradient;
    ``only``: the convolution names of the chains to fuse (None: all);
    ``train``: False for a forward-only graph (the operator saves nothing for
    a backward). Returns the number of chains fused."""
    nodes = graph['nodes']
    replace: Dict[int, Dict[str, Any]] = {}
    drop = set()
    for i, act, conv, attrs in _find_chains(graph, fusable_params, inputs):
        if only is not None and nodes[conv]['name'] not in only:
            continue
        if not train:
            attrs = dict(attrs, need_data_grad='0', training='0')
        replace[i] = {'op': op, 'name': nodes[conv]['name'], 'attrs': attrs, 'inputs': nodes[conv]['inputs']}
        drop.update((act, conv))
    if not replace:
        return 0
    new_index: Dict[int, int] = {}
    kept: List[Dict[str, Any]] = []
    for i, node in enumerate(nodes):
        if i in drop:
            continue
        new_index[i] = len(kept)
        kept.append(replace.get(i, node))
    for node in kept:
        node['inputs'] = [[new_index[s], o, v] for s, o, v in node['inputs']]
    graph['nodes'] = kept
    graph['heads'] = [[new_index[s], o, v] for s, o, v in graph['heads']]
    graph['arg_nodes'] = [i for i, node in enumerate(kept) if node['op'] == 'null']
    graph.pop('node_row_ptr', None)  # recomputed by MXNet
    return len(replace)

