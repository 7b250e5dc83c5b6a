"""JitError and where a captured function's user code is."""
import os
import sys

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


class JitError(RuntimeError):
    """A captured function does something a replay could not repeat faithfully."""


def user_line(depth=2):
    """'file:line' of the innermost caller outside the clownpiece package (the user's line)."""
    f = sys._getframe(depth)
    while f is not None and f.f_code.co_filename.startswith(_PACKAGE):
        f = f.f_back
    if f is None:
        return "<unknown>"
    return f"{f.f_code.co_filename}:{f.f_lineno}"


def source_of(where):
    """The text of line 'file:line', for error messages."""
    import linecache
    path, _, line = where.rpartition(":")
    text = linecache.getline(path, int(line)).strip() if line.isdigit() else ""
    return f" `{text}`" if text else ""
