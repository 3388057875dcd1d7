"""d2lnets: the lecture "LeNet, AlexNet, VGG, NiN" in MXNet Gluon.

Importing is cheap: the public names below load their modules (and MXNet)
when first used. Without MXNet installed, importing works and only the ONNX
deploy path (``d2lnets predict NAME --onnx FILE IMAGE...``) runs; any other
name raises an ImportError that says how to install MXNet.
"""
import importlib
import importlib.util

from ._version import __version__
from .runtime import apply_defaults as _apply_defaults

MISSING_MXNET = (
    'd2lnets needs Apache MXNet 1.9.1, which is not installed. Install the CPU build with '
    '"pip install mxnet==1.9.1" (or "pip install -r requirements.txt"), or the GPU build '
    '(CUDA 11.2) with "pip install -r requirements-gpu.txt". MXNet publishes wheels for '
    'Linux x86-64 only: on Windows use WSL2, on an Apple-silicon Mac a Linux container. '
    'Without MXNet, only `d2lnets predict NAME --onnx FILE IMAGE...` works (with onnxruntime).')

_apply_defaults()

# public name -> module that defines it
_exports = {
    'get_model': 'models', 'list_models': 'models',
    'layer_shapes': 'summary', 'format_layer_shapes': 'summary', 'print_layer_shapes': 'summary',
    'complexity': 'summary',
    'count_parameters': 'models.params', 'initialize_missing': 'models.params',
    'load_gluoncv_params': 'weights.zoo',
}
_submodules = {'nn', 'models', 'summary', 'cli', 'runtime', 'weights', 'imagenet', 'io',
               'data', 'train', 'evaluate', 'plot', 'run', 'checkpoint', 'context', 'weights',
               'complexity_report', 'bench', 'fused', 'launch', 'distributed',
               'export', 'images', 'predict', 'onnx_model'}
# The deploy path runs an exported ONNX file without MXNet (onnxruntime, numpy, Pillow).
_without_mxnet = {'cli', 'runtime', 'io', 'data', 'images', 'predict', 'onnx_model', 'weights'}

__all__ = ['__version__'] + sorted(_exports) + sorted(_submodules)


def __getattr__(name):
    module = _exports.get(name, name)
    package = module.split('.')[0]
    if package not in _submodules:
        raise AttributeError('module %r has no attribute %r' % (__name__, name))
    if package not in _without_mxnet:
        if importlib.util.find_spec('mxnet') is None:
            raise ImportError(MISSING_MXNET, name='mxnet')
        # MXNet would log its engine type at the first operation, in every notebook.
        from .runtime import start_engine_quietly
        start_engine_quietly()
    loaded = importlib.import_module('.' + module, __name__)
    return getattr(loaded, name) if name in _exports else loaded


def __dir__():
    return __all__
