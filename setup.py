"""Build hook: the wheel carries the trees edgekit builds, flashes and emulates from.

firmware/, boards/ and protocol/ stay at the top of the checkout (a reader finds the device
code and the protocol by folder name); an installed edgekit has no checkout, so the build copies
them, whole and recursively (any subfolder, .py and data files alike), to edgekit/_data/ inside
the package, where edgekit.paths finds them. An editable install reads the checkout instead.
Everything else about the package is declared in pyproject.toml.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
TREES = ("firmware", "boards", "protocol")
SKIP_DIRS = {"__pycache__"}
SKIP_SUFFIXES = {".pyc", ".mpy"}        # build products: compiled per MicroPython version


def tree_files(tree):
    for src in sorted((HERE / tree).rglob("*")):
        rel = src.relative_to(HERE)
        if src.is_file() and not SKIP_DIRS & set(rel.parts) and src.suffix not in SKIP_SUFFIXES:
            yield rel


class BuildPyWithTrees(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        data = Path(self.build_lib, "edgekit", "_data")
        # build/lib outlives a build: a file moved or deleted since the last one must not ride
        # along in the next wheel (the firmware tree gets reorganised).
        shutil.rmtree(data, ignore_errors=True)
        for rel in (f for tree in TREES for f in tree_files(tree)):
            dst = data / rel
            self.mkpath(str(dst.parent))
            self.copy_file(str(HERE / rel), str(dst), preserve_mode=False)


setup(cmdclass={"build_py": BuildPyWithTrees})
