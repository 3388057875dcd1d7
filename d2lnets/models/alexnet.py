"""AlexNet (Krizhevsky et al., 2012), as the lecture writes it."""
from . import nn
from ._checks import check_arguments


def alexnet(classes: int = 10, dropout: float = 0.5) -> nn.Sequential:
    """The lecture's AlexNet: a deeper, wider LeNet with ReLU, max pooling
    and dropout.

    Parameters
    ----------
    classes : int
        Number of output classes.
    dropout : float
        Dropout rate after each of the two hidden dense layers.

    Returns
    -------
    nn.Sequential
        Uninitialized; built for 224x224 input (1 or 3 channels).
    """
    check_arguments(classes=classes, dropout=dropout)
    net = nn.Sequential()
    # A larger 11 x 11 window to capture objects, with stride 4 to cut the
    # resolution: (batch, 96, 54, 54) from 224 x 224 input.
    net.add(nn.Conv2D(96, kernel_size=11, strides=4, activation='relu'),
            nn.MaxPool2D(pool_size=3, strides=2),
            # A smaller window, padding 2 keeps the size; more channels.
            nn.Conv2D(256, kernel_size=5, padding=2, activation='relu'),
            nn.MaxPool2D(pool_size=3, strides=2),
            # Three 3 x 3 convolutions; only the last is followed by pooling.
            nn.Conv2D(384, kernel_size=3, padding=1, activation='relu'),
            nn.Conv2D(384, kernel_size=3, padding=1, activation='relu'),
            nn.Conv2D(256, kernel_size=3, padding=1, activation='relu'),
            nn.MaxPool2D(pool_size=3, strides=2),
            # (batch, 256, 5, 5) -> 4096: the dense layers hold most parameters.
            nn.Dense(4096, activation='relu'), nn.Dropout(dropout),
            nn.Dense(4096, activation='relu'), nn.Dropout(dropout),
            nn.Dense(classes))
    return net


def alexnet_gluoncv(classes: int = 10, dropout: float = 0.5) -> nn.Sequential:
    """GluonCV's AlexNet (Krizhevsky's "one weird trick" layout), in the
    lecture's style: the network GluonCV's ImageNet weights belong to.

    It differs from the lecture's :func:`alexnet` in its widths (64/192/384/
    256/256 channels instead of 96/256/384/384/256) and in padding 2 on the
    first convolution, so the two cannot share weights.

    Parameters
    ----------
    classes : int
        Number of output classes (1000 for GluonCV's ImageNet weights).
    dropout : float
        Dropout rate after each of the two hidden dense layers.

    Returns
    -------
    nn.Sequential
        Uninitialized; built for 224x224 input.
    """
    check_arguments(classes=classes, dropout=dropout)
    net = nn.Sequential()
    # Padding 2 gives (batch, 64, 55, 55) from 224 x 224 input.
    net.add(nn.Conv2D(64, kernel_size=11, strides=4, padding=2, activation='relu'),
            nn.MaxPool2D(pool_size=3, strides=2),
            nn.Conv2D(192, kernel_size=5, padding=2, activation='relu'),
            nn.MaxPool2D(pool_size=3, strides=2),
            nn.Conv2D(384, kernel_size=3, padding=1, activation='relu'),
            nn.Conv2D(256, kernel_size=3, padding=1, activation='relu'),
            nn.Conv2D(256, kernel_size=3, padding=1, activation='relu'),
            nn.MaxPool2D(pool_size=3, strides=2),
            # (batch, 256, 6, 6) -> 4096; Dense flattens, as GluonCV's Flatten does.
            nn.Dense(4096, activation='relu'), nn.Dropout(dropout),
            nn.Dense(4096, activation='relu'), nn.Dropout(dropout),
            nn.Dense(classes))
    return net
