"""``python -m d2lnets.training.launch --child ...``: the program each host runs (:mod:`.child`)."""
import os
import sys

from .child import child_main

if sys.argv[1:2] == ['--child']:
    status = child_main(sys.argv[1:])
    sys.stdout.flush()
    os._exit(status)     # not a normal exit: the lifeline thread still blocks in a read of stdin
