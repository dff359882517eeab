"""Build script: the package layout and the compiled Cython extensions (csrc/*.pyx -> aemg._ext.*).

Set ``AEMG_NO_EXT=1`` to skip the extensions; aemg then runs on its NumPy/Numba backends.
The extensions are built for the building machine's CPU (``-march=native``, as Numba compiles for
the host): about 10-25 % faster envelope/segmentation from wider SIMD. Set
``AEMG_PORTABLE_BUILD=1`` when building a wheel for other machines.
The Triton kernels in kernels/ are installed as the subpackage ``aemg.kernels``.
"""
import glob
import os
import sys

from setuptools import find_packages, setup

packages = find_packages(include=["aemg", "aemg.*"]) + ["aemg.kernels"]
package_dir = {"aemg.kernels": "kernels"}


def _flag(name):
    return os.environ.get(name, "").lower() in {"1", "true", "yes", "on"}


def extensions():
    if _flag("AEMG_NO_EXT"):
        return []
    sources = sorted(glob.glob(os.path.join("csrc", "*.pyx")))
    if not sources:
        return []
    import numpy
    from Cython.Build import cythonize
    from setuptools import Extension

    cflags = ["-O3"]
    if not _flag("AEMG_PORTABLE_BUILD") and sys.platform != "win32":
        cflags.append("-march=native")
    exts = [Extension(f"aemg._ext.{os.path.splitext(os.path.basename(src))[0]}", [src],
                      include_dirs=[numpy.get_include(), "csrc"],
                      extra_compile_args=cflags,
                      define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")])
            for src in sources]
    return cythonize(exts, language_level=3, compiler_directives={
        "boundscheck": False, "wraparound": False, "cdivision": True, "initializedcheck": False})


setup(packages=packages, package_dir=package_dir, ext_modules=extensions(),
      package_data={"aemg": ["py.typed"],
                    "aemg.weights": ["index.json", "*/*.safetensors", "*/*.json", "*/*.md"]},
      zip_safe=False)
