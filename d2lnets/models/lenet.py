"""LeNet (LeCun et al., 1998), as the lecture writes it."""
from . import nn
from ._checks import check_arguments


def lenet(classes: int = 10, padding: int = 2) -> nn.Sequential:
    """The lecture's LeNet: two sigmoid convolutions with average pooling,
    then three dense layers.

    Parameters
    ----------
    classes : int
        Number of output classes.
    padding : int
        Padding of the first convolution. The lecture's notebook (and the
        slide's ``16x5x5x120 = 48k`` count) pads by 2 so that 28x28 input
        keeps its size; ``padding=0`` gives the slide's snippet.

    Returns
    -------
    nn.Sequential
        Uninitialized; input channels and sizes are inferred at the first call.
    """
    check_arguments(classes=classes, padding=padding)
    net = nn.Sequential()
    net.add(nn.Conv2D(channels=6, kernel_size=5, padding=padding, activation='sigmoid'),
            nn.AvgPool2D(pool_size=2, strides=2),
            nn.Conv2D(channels=16, kernel_size=5, activation='sigmoid'),
            nn.AvgPool2D(pool_size=2, strides=2),
            # Dense flattens (batch, 16, 5, 5) to (batch, 400) by itself.
            nn.Dense(120, activation='sigmoid'),
            nn.Dense(84, activation='sigmoid'),
            nn.Dense(classes))
    return net
