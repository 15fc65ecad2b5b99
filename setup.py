"""Build the optional compiled DataLoader; all metadata lives in pyproject.toml.

Switches (environment variables; 1/true/yes/on or 0/false/no/off, anything else is an error):
  DLOADER_NO_EXTENSIONS=1       build the pure-Python package only
  DLOADER_REQUIRE_EXTENSIONS=1  fail the build if the extension does not compile
                                (also implied when running under cibuildwheel)
  DLOADER_DEBUG_BUILD=1         -O0 -g and Cython's internal assertions
  DLOADER_CYTHON_TRACE=1        line tracing, for coverage of the .pyx

They are parsed by dloader/_switches.py, the package's own parser, loaded by file
path: building must not import the package it builds.
"""

import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def load_switches():
    """dloader/_switches.py as a module of its own, without importing the dloader package."""
    path = os.path.join(HERE, "dloader", "_switches.py")
    spec = importlib.util.spec_from_file_location("_dloader_build_switches", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


try:
    _env_flag = load_switches().env_flag
    NO_EXTENSIONS = _env_flag("DLOADER_NO_EXTENSIONS") or sys.implementation.name != "cpython"
    REQUIRE_EXTENSIONS = _env_flag("DLOADER_REQUIRE_EXTENSIONS") or os.environ.get("CIBUILDWHEEL") == "1"
    DEBUG_BUILD = _env_flag("DLOADER_DEBUG_BUILD")
    CYTHON_TRACE = _env_flag("DLOADER_CYTHON_TRACE")
except ValueError as error:  # one clear line, not a traceback through setuptools
    sys.exit(f"dloader setup.py: {error}")
IS_MSVC = sys.platform == "win32"


def optional_build_ext():
    """build_ext that installs the pure package with a warning when the extension cannot be compiled.

    Built on demand: setuptools is imported only when building, so tests can read
    this file's switches in an environment without setuptools.
    """
    from setuptools.command.build_ext import build_ext

    class OptionalBuildExt(build_ext):
        def run(self):
            try:
                super().run()
            except Exception as error:
                self._give_up(error)

        def build_extension(self, ext):
            try:
                super().build_extension(ext)
            except Exception as error:
                self._give_up(error)

        def _give_up(self, error):
            if REQUIRE_EXTENSIONS:
                raise
            print(
                f"WARNING: dloader's compiled extension failed to build ({error!r}); "
                "installing the pure-Python implementation, which is slower but behaves identically.",
                file=sys.stderr,
            )

    return OptionalBuildExt


def extensions():
    if NO_EXTENSIONS:
        print("dloader: building the pure-Python package (DLOADER_NO_EXTENSIONS)")
        return []
    from setuptools import Extension

    try:
        from Cython.Build import cythonize
    except ImportError:
        if REQUIRE_EXTENSIONS:
            raise
        print("WARNING: Cython is not available; building the pure-Python dloader", file=sys.stderr)
        return []

    macros = []
    if CYTHON_TRACE:
        macros += [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")]
    if IS_MSVC:
        compile_args = ["/Od", "/Zi"] if DEBUG_BUILD else ["/O2"]
    else:
        compile_args = ["-O0", "-g3", "-UNDEBUG"] if DEBUG_BUILD else ["-O2"]
    if DEBUG_BUILD:
        macros.append(("CYTHON_DEBUG", "1"))

    directives = {
        "language_level": "3",
        # "clinic" puts the signature in __text_signature__ (so inspect.signature works on
        # the compiled class) and keeps __doc__ identical to the pure twin's.
        "embedsignature": True,
        "embedsignature.format": "clinic",
        "freethreading_compatible": True,
        # Methods as C method descriptors, which check that `self` is a DataLoader: Cython's
        # bound functions do not, so DataLoader.load(object(), 1) would read a foreign object's
        # C fields and crash the interpreter.
        "binding": False,
        "boundscheck": DEBUG_BUILD,
        "wraparound": False,
        "linetrace": CYTHON_TRACE,
    }
    print(f"dloader: building the compiled extension ({'debug' if DEBUG_BUILD else 'release'} build)")
    try:
        return cythonize(
            [
                Extension(
                    "dloader._loader_c",
                    ["dloader/_loader_c.pyx"],
                    define_macros=macros,
                    extra_compile_args=compile_args,
                )
            ],
            compiler_directives=directives,
            gdb_debug=DEBUG_BUILD,
        )
    except Exception as error:  # a Cython compile error: same policy as a C compile error
        if REQUIRE_EXTENSIONS:
            raise
        print(f"WARNING: cythonize failed ({error!r}); building the pure-Python dloader", file=sys.stderr)
        return []


# setuptools runs this file as __main__ (`python setup.py` and PEP 517 builds alike);
# imported under another name (the switch tests do), it only reads the switches.
if __name__ == "__main__":
    from setuptools import setup

    setup(ext_modules=extensions(), cmdclass={"build_ext": optional_build_ext()})
