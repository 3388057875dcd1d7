"""VGG (Simonyan and Zisserman, 2014), as the lecture writes it."""
from typing import Sequence, Tuple

from . import nn
from ._checks import check_arguments

# (number of convolutions, output channels) per VGG block, as in the paper.
conv_archs = {
    11: ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512)),
    13: ((2, 64), (2, 128), (2, 256), (2, 512), (2, 512)),
    16: ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512)),
    19: ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512)),
}


def vgg_block(num_convs: int, num_channels: int, batch_norm: bool = False) -> nn.Sequential:
    """``num_convs`` 3x3 convolutions (padding 1) and a 2x2 max pooling.

    With ``batch_norm``, each convolution is followed by BatchNorm and then
    the ReLU, as GluonCV's ``vgg*_bn`` place it.
    """
    blk = nn.Sequential()
    for _ in range(num_convs):
        if batch_norm:
            blk.add(nn.Conv2D(num_channels, kernel_size=3, padding=1),
                    nn.BatchNorm(),
                    nn.Activation('relu'))
        else:
            blk.add(nn.Conv2D(num_channels, kernel_size=3, padding=1, activation='relu'))
    blk.add(nn.MaxPool2D(pool_size=2, strides=2))
    return blk


def vgg(conv_arch: Sequence[Tuple[int, int]], classes: int = 10, dropout: float = 0.5,
        batch_norm: bool = False) -> nn.Sequential:
    """VGG blocks from ``conv_arch`` followed by the three dense layers.

    Parameters
    ----------
    conv_arch : sequence of (num_convs, num_channels)
        One pair per VGG block; each block halves the resolution.
    classes : int
        Number of output classes.
    dropout : float
        Dropout rate after each of the two hidden dense layers.
    batch_norm : bool
        Add BatchNorm after every convolution.
    """
    check_arguments(classes=classes, dropout=dropout)
    if not conv_arch:
        raise ValueError('conv_arch must list at least one (num_convs, num_channels) block')
    for pair in conv_arch:
        if len(pair) != 2 or min(pair) < 1:
            raise ValueError('conv_arch entries must be (num_convs, num_channels) with both >= 1, '
                             'got %r' % (pair,))
    net = nn.Sequential()
    # The convolutional part.
    for (num_convs, num_channels) in conv_arch:
        net.add(vgg_block(num_convs, num_channels, batch_norm))
    # The fully connected part: (batch, 512, 7, 7) -> 4096 for 224 x 224 input.
    net.add(nn.Dense(4096, activation='relu'), nn.Dropout(dropout),
            nn.Dense(4096, activation='relu'), nn.Dropout(dropout),
            nn.Dense(classes))
    return net


def _vgg(depth: int, ratio: int, classes: int, dropout: float, batch_norm: bool) -> nn.Sequential:
    check_arguments(ratio=ratio)
    # The lecture's small VGG divides every block's channels by `ratio`.
    conv_arch = [(num_convs, num_channels // ratio) for num_convs, num_channels in conv_archs[depth]]
    return vgg(conv_arch, classes=classes, dropout=dropout, batch_norm=batch_norm)


def vgg11(classes: int = 10, dropout: float = 0.5, ratio: int = 1) -> nn.Sequential:
    """VGG-11, the lecture's ``conv_arch``; ``ratio=4`` is the lecture's small VGG."""
    return _vgg(11, ratio, classes, dropout, False)


def vgg13(classes: int = 10, dropout: float = 0.5, ratio: int = 1) -> nn.Sequential:
    """VGG-13."""
    return _vgg(13, ratio, classes, dropout, False)


def vgg16(classes: int = 10, dropout: float = 0.5, ratio: int = 1) -> nn.Sequential:
    """VGG-16."""
    return _vgg(16, ratio, classes, dropout, False)


def vgg19(classes: int = 10, dropout: float = 0.5, ratio: int = 1) -> nn.Sequential:
    """VGG-19."""
    return _vgg(19, ratio, classes, dropout, False)


def vgg11_small(classes: int = 10, dropout: float = 0.5) -> nn.Sequential:
    """The lecture's small VGG: VGG-11 with every block's channels divided by 4."""
    return vgg11(classes=classes, dropout=dropout, ratio=4)


def vgg11_bn(classes: int = 10, dropout: float = 0.5, ratio: int = 1) -> nn.Sequential:
    """VGG-11 with batch normalization."""
    return _vgg(11, ratio, classes, dropout, True)


def vgg13_bn(classes: int = 10, dropout: float = 0.5, ratio: int = 1) -> nn.Sequential:
    """VGG-13 with batch normalization."""
    return _vgg(13, ratio, classes, dropout, True)


def vgg16_bn(classes: int = 10, dropout: float = 0.5, ratio: int = 1) -> nn.Sequential:
    """VGG-16 with batch normalization."""
    return _vgg(16, ratio, classes, dropout, True)


def vgg19_bn(classes: int = 10, dropout: float = 0.5, ratio: int = 1) -> nn.Sequential:
    """VGG-19 with batch normalization."""
    return _vgg(19, ratio, classes, dropout, True)
