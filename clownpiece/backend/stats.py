"""Counters the backend keeps so tests and benchmarks can see launches, builds and transfers."""

counters = dict(launches=0, builds=0, h2d_count=0, h2d_bytes=0, d2h_count=0, d2h_bytes=0,
                pool_bytes_in_use=0, pool_bytes_cached=0, allocations=0,
                fused_ops=0)  # fused_ops: elementwise ops deferred into generated kernels (backend/fusion.py)
_GAUGES = ("pool_bytes_in_use", "pool_bytes_cached")


def stats():
    return dict(counters)


def reset_stats():
    """Zero the event counters (the pool gauges keep their current values)."""
    for k in counters:
        if k not in _GAUGES:
            counters[k] = 0
