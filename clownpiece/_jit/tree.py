"""Arguments and results as flat lists of leaves: tuples, lists and dicts (exact types) are walked, anything
else is a leaf."""


def flatten(obj, leaves):
    """Append obj's leaves to `leaves`; return its structure (what unflatten needs to rebuild it)."""
    t = type(obj)
    if t is tuple or t is list:
        return (t, tuple(flatten(x, leaves) for x in obj))
    if t is dict:
        keys = tuple(obj)
        return (dict, keys, tuple(flatten(obj[k], leaves) for k in keys))
    leaves.append(obj)
    return None


def unflatten(spec, leaves):
    """obj from its structure and an iterator over its leaves."""
    if spec is None:
        return next(leaves)
    if spec[0] is dict:
        return {k: unflatten(s, leaves) for k, s in zip(spec[1], spec[2])}
    return spec[0](unflatten(s, leaves) for s in spec[1])
