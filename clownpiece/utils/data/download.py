"""Downloads for the datasets: a file fetched through a temporary file and kept only once its md5 matches."""
import hashlib
import os
import tempfile
import urllib.request


def md5(path):
    """The hex md5 of a file's contents."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url, target, expected_md5):
    """Download url to target through a temporary file, renamed only once its md5 matches."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
        got = md5(tmp)
        if got != expected_md5:
            raise ValueError(f"md5 mismatch (expected {expected_md5}, got {got})")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
