"""Run an exported ONNX file with onnxruntime; MXNet is not needed (nor imported).

This is the deploy path: a machine with ``onnxruntime``, ``numpy`` and
``Pillow`` runs ``d2lnets predict NAME --onnx FILE IMAGE...``.
"""
import os
from typing import Dict, List, Optional, Tuple

import numpy as np

from .. import limits
from ..io import parse_json
from ..weights.meta import MAX_BYTES, validate

# Key of the JSON metadata d2lnets stores in the ONNX file (model name, classes,
# input shape, preprocessing: meta.json's fields), read by ``d2lnets predict --onnx``.
METADATA_KEY = 'd2lnets'


def read_metadata(raw: Optional[str], path: str) -> Dict:
    """The validated d2lnets metadata ``raw`` (JSON text, or None) stored in the ONNX file ``path``;
    ``ValueError`` in one line naming the file when it is damaged."""
    source = '%s (its d2lnets metadata)' % path
    return validate(parse_json(raw, source, 'export it again', max_bytes=MAX_BYTES) if raw else {}, source)


class OnnxModel:
    """An ONNX file in an onnxruntime session, with the metadata d2lnets stored in it.

    Parameters
    ----------
    path : str
        An ``.onnx`` file, typically written by ``d2lnets export --format onnx``.
    """

    def __init__(self, path: str):
        try:
            import onnxruntime
        except ImportError:
            raise ImportError('running an ONNX file needs onnxruntime: pip install onnxruntime') from None
        if not os.path.isfile(path):
            raise FileNotFoundError('no such ONNX file: %s' % path)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only; a deploy run prints nothing else
        try:
            self.session = onnxruntime.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        except Exception as err:  # onnxruntime raises its own exception types
            raise ValueError('%s is not a model onnxruntime can run: %s'
                             % (path, str(err).strip().splitlines()[0])) from None
        self.path = path
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ValueError('%s has %d inputs; expected one image batch' % (path, len(inputs)))
        self.input_name = inputs[0].name
        raw = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        self.metadata: Dict = read_metadata(raw, path)
        self._input_dims = inputs[0].shape
        outputs = self.session.get_outputs()
        # (batch, classes); a dynamic class axis (a name, not a number) is checked by check_outputs after a run.
        dims = outputs[0].shape if outputs else []
        self.num_outputs: Optional[int] = dims[-1] if len(dims) == 2 and limits.is_int(dims[-1]) else None
        if self.num_outputs is not None:
            self.check_outputs(self.num_outputs)

    def check_outputs(self, num_outputs: int) -> None:
        """``ValueError`` in one line if the metadata's class list does not fit ``num_outputs`` outputs
        (as ``--params`` refuses a meta.json that does not fit the weights)."""
        names = self.metadata.get('classes')
        if names is not None and len(names) != num_outputs:
            raise ValueError('the d2lnets metadata in %s names %d classes, but the model has %d outputs; the two '
                             'do not belong together: export it again' % (self.path, len(names), num_outputs))

    @property
    def input_shape(self) -> Tuple[int, int, int]:
        """(channels, height, width) of one input image."""
        dims = self._input_dims[1:]
        if len(dims) != 3 or not all(limits.is_int(d) for d in dims):
            raise ValueError('%s takes input of shape %s; expected (batch, channels, height, width)'
                             % (self.path, self._input_dims))
        # The file's word, like --input-shape's: bounded before any image is resized to it.
        return limits.check_shape((1,) + tuple(dims), 'the input shape of %s' % self.path)[1:]

    @property
    def model_name(self) -> Optional[str]:
        """The d2lnets model name stored at export, if any."""
        return self.metadata.get('model')

    def run_all(self, batch: np.ndarray) -> List[np.ndarray]:
        """Every output of the file, in its order (the logits first), for a float32 ``batch``."""
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, np.float32)})

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Outputs (logits) for a float32 ``batch`` of shape (batch, channels, height, width)."""
        logits = self.run_all(batch)[0]
        if self.num_outputs is None and np.ndim(logits) == 2:
            self.check_outputs(logits.shape[1])
        return logits
