"""Copies cl_kernels/ into the package when building a wheel, so an installed clownpiece finds its kernels
next to its modules (clownpiece/cl_kernels/); an editable checkout finds them at the repo root."""
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithKernels(build_py):
    def run(self):
        super().run()
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cl_kernels")
        dst = os.path.join(self.build_lib, "clownpiece", "cl_kernels")
        os.makedirs(dst, exist_ok=True)
        for name in os.listdir(src):
            if name.endswith((".cl", ".h")):  # kernels and the headers they include
                shutil.copy2(os.path.join(src, name), dst)


setup(cmdclass={"build_py": BuildWithKernels})
