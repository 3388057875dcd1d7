"""Networks leaving d2lnets: exported to MXNet's symbol format or ONNX, and run
on image files.

- :mod:`.export`: symbol JSON + params, or ONNX, verified against the network.
- :mod:`.onnx_model`: an ONNX file in onnxruntime.
- :mod:`.images`: image files -> network input (Fashion-MNIST's form, GluonCV's
  ImageNet evaluation transform: the transforms :mod:`d2lnets.datasets` names).
- :mod:`.predict`: top-k classes of image files, from any source of weights,
  ImageNet's included, one path for all.

Rule: every module here imports without MXNet (tests/test_cli.py checks it),
so ``d2lnets predict NAME --onnx FILE IMAGE`` runs where only onnxruntime,
numpy and Pillow are installed; MXNet is imported inside the functions that
need it.
"""
