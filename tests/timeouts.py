"""How long the tests wait for a process before calling it hung, scaled where all runs slower."""
import math
import os

# e.g. 20 under qemu-user, where a Python start with MXNet takes minutes (docs/platforms.md)
SCALE = float(os.environ.get('D2L_DCGAN_TEST_TIME_SCALE', '1'))


def limit(seconds):
    """`seconds` of waiting here, scaled by $D2L_DCGAN_TEST_TIME_SCALE, in whole seconds."""
    return math.ceil(seconds * SCALE)  # an int: older nbclient's `timeout` trait refuses a float
