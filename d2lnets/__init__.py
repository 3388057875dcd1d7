"""d2lnets: the lecture "LeNet, AlexNet, VGG, NiN" in MXNet Gluon.

Importing is cheap: the public names below load their modules (and MXNet)
when first used. Without MXNet installed, importing works and only the ONNX
deploy path (``d2lnets predict NAME --onnx FILE IMAGE...``) runs; any other
name raises an ImportError that says how to install MXNet.
"""
import importlib
import sys

from ._version import __version__
from .runtime import apply_defaults as _apply_defaults
from .runtime import mxnet_compat as _mxnet_compat

MISSING_MXNET = (
    'd2lnets needs Apache MXNet 1.9.1, which is not installed. Install the CPU build with '
    '"pip install mxnet==1.9.1" (or "pip install -r requirements.txt"), or the GPU build '
    '(CUDA 11.2) with "pip install -r requirements-gpu.txt". MXNet publishes wheels for '
    'Linux x86-64 only: on Windows use WSL2, on an Apple-silicon Mac a Linux container. '
    'Without MXNet, only `d2lnets predict NAME --onnx FILE IMAGE...` works (with onnxruntime).')

_mxnet_compat()
_apply_defaults()

# public name -> module that defines it
_exports = {
    'get_model': 'models', 'list_models': 'models',
    'layer_shapes': 'models.summary', 'format_layer_shapes': 'models.summary',
    'print_layer_shapes': 'models.summary', 'complexity': 'models.summary',
    'count_parameters': 'models.params', 'initialize_missing': 'models.params',
    'load_gluoncv_params': 'weights.zoo', 'load_network': 'models.loading',
    'train': 'training.loop', 'RunConfig': 'training.config', 'export': 'deploy.export',
    'load_subject': 'explain.show', 'show_activations': 'explain.show', 'show_filters': 'explain.show',
    'show_saliency': 'explain.show', 'show_gradcam': 'explain.show',
}
# d2lnets.NAME -> its module; the packages are the architecture (docs/architecture.md)
_submodules = {name: name for name in ('cli', 'context', 'data', 'deploy', 'drawing', 'explain', 'io', 'models',
                                       'perf', 'registry', 'runtime', 'sysinfo', 'training', 'weights')}
_submodules['nn'] = 'models.nn'   # the lecture writes `from d2lnets import nn`

__all__ = ['__version__'] + sorted(_exports) + sorted(_submodules)


def __getattr__(name):
    module = _exports.get(name) or _submodules.get(name)
    if module is None:
        raise AttributeError('module %r has no attribute %r' % (__name__, name))
    try:
        loaded = importlib.import_module('.' + module, __name__)
    except ImportError as err:
        if err.name == 'mxnet':
            raise ImportError(MISSING_MXNET, name='mxnet') from None
        raise
    if 'mxnet' in sys.modules:
        # MXNet would log its engine type at the first operation, in every notebook.
        from .runtime import start_engine_quietly
        start_engine_quietly()
    return getattr(loaded, name) if name in _exports else loaded


def __dir__():
    return __all__
