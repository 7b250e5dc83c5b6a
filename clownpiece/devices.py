"""`python -m clownpiece.devices`: list the OpenCL platforms/devices and mark the one clownpiece uses."""
import sys

from .backend.discovery import DeviceError, choose, describe, list_devices


def main(argv=None):
    found = list_devices()
    if not found:
        print("no OpenCL platform found; install one: pip install clownpiece[pocl]  "
              "(or apt-get install pocl-opencl-icd, or a GPU vendor's OpenCL driver)")
        return 1
    try:
        chosen = choose()
    except DeviceError as e:
        chosen = None
        print(e, file=sys.stderr)
    for f in found:
        mark = "*" if chosen is not None and f[:2] == chosen[:2] else " "
        print(f"{mark} {describe(*f)}")
    print("(* = selected; set CLOWNPIECE_DEVICE to a name substring or 'platform:device' to choose)")
    return 0 if chosen is not None else 2


if __name__ == "__main__":
    sys.exit(main())
