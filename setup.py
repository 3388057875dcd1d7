import os

from setuptools import find_packages, setup

here = os.path.dirname(os.path.abspath(__file__))
version = {}
with open(os.path.join(here, 'd2lnets', '_version.py')) as f:
    exec(f.read(), version)

setup(
    name='d2lnets',
    version=version['__version__'],
    description='The lecture "LeNet, AlexNet, VGG, NiN" (Dive into Deep Learning) in MXNet Gluon',
    long_description=open(os.path.join(here, 'README.md')).read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    packages=find_packages(include=['d2lnets', 'd2lnets.*']),
    # Shipped weights and manifests, and the fused kernels' source (built on
    # first use, d2lnets/perf/kernels_build.py), travel with a non-editable install.
    package_data={'d2lnets': ['weights/*.params', 'weights/*.json', 'perf/csrc/*.cc']},
    # Tested on 3.11 and 3.12. MXNet 1.9.1 needs numpy 1.x, which has no wheel
    # for 3.13; numpy 1.24+ and Python 3.12 need d2lnets/runtime.py's mxnet_compat.
    python_requires='>=3.8,<3.13',
    # MXNet itself is not listed: `mxnet` (CPU) and `mxnet-cu112` (GPU) both
    # install the module `mxnet`, and one would overwrite the other. Install
    # one of them first (requirements.txt or requirements-gpu.txt), as GluonCV asks.
    install_requires=['numpy>=1.21,<2', 'setuptools; python_version >= "3.12"', 'gluoncv==0.10.5.post0',
                      'opencv-python<4.9', 'matplotlib<3.9', 'Pillow', 'tqdm'],
    extras_require={
        'cpu': ['mxnet==1.9.1'],
        'gpu': ['mxnet-cu112==1.9.1'],
        'onnx': ['onnx<1.17', 'onnxruntime'],
    },
    entry_points={'console_scripts': ['d2lnets = d2lnets.cli:main']},
    classifiers=[
        'License :: OSI Approved :: Apache Software License',
        'Programming Language :: Python :: 3.11',
        'Programming Language :: Python :: 3.12',
        'Operating System :: POSIX :: Linux',
    ],
)
