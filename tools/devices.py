"""List OpenCL devices (same as `python -m clownpiece.devices`)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from clownpiece.devices import main  # noqa: E402

sys.exit(main())
