"""Network in Network (Lin et al., 2013), as the lecture writes it."""
from . import nn
from ._checks import check_arguments


def nin_block(num_channels: int, kernel_size: int, strides: int, padding: int) -> nn.Sequential:
    """A convolution followed by two 1x1 convolutions, all with ReLU.

    The 1x1 convolutions act as dense layers applied to every pixel.
    """
    blk = nn.Sequential()
    blk.add(nn.Conv2D(num_channels, kernel_size, strides, padding, activation='relu'),
            nn.Conv2D(num_channels, kernel_size=1, activation='relu'),
            nn.Conv2D(num_channels, kernel_size=1, activation='relu'))
    return blk


def nin(classes: int = 10, dropout: float = 0.5) -> nn.Sequential:
    """The lecture's NiN: AlexNet's convolution sizes as NiN blocks, and a
    last NiN block with one channel per class and global average pooling
    instead of dense layers.
    """
    check_arguments(classes=classes, dropout=dropout)
    net = nn.Sequential()
    net.add(nin_block(96, kernel_size=11, strides=4, padding=0),
            nn.MaxPool2D(pool_size=3, strides=2),
            nin_block(256, kernel_size=5, strides=1, padding=2),
            nn.MaxPool2D(pool_size=3, strides=2),
            nin_block(384, kernel_size=3, strides=1, padding=1),
            nn.MaxPool2D(pool_size=3, strides=2),
            nn.Dropout(dropout),
            # One output channel per class.
            nin_block(classes, kernel_size=3, strides=1, padding=1),
            # Global average pooling: (batch, classes, 5, 5) -> (batch, classes, 1, 1).
            nn.GlobalAvgPool2D(),
            # (batch, classes, 1, 1) -> (batch, classes).
            nn.Flatten())
    return net
