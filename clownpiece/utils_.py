"""Small helpers the course's test code imports (`from clownpiece.utils_ import wrap_tuple`)."""


def wrap_tuple(x):
    """A list or tuple as a tuple; anything else as a 1-tuple."""
    return tuple(x) if isinstance(x, (list, tuple)) else (x,)


def ceil_div(a, b):
    """ceil(a / b) for ints; 0 when b == 0."""
    return 0 if b == 0 else -(-a // b)
