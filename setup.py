"""Installs the enhancer_gan library (pip install -e .[test])."""

import pathlib
import re

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent
VERSION = re.search(
    r'__version__ = "([^"]+)"', (HERE / "enhancer_gan" / "__init__.py").read_text()
).group(1)
REQUIREMENTS = [
    line.split("#")[0].strip()
    for line in (HERE / "requirements.txt").read_text().splitlines()
    if line.split("#")[0].strip()
]

setup(
    name="enhancer-gan",
    version=VERSION,
    description=(
        "TensorFlow 2 / Keras 3 reproduction of 'Learning Adversarial 3D Model "
        "Generation with 2D Image Enhancer' (Zhu, Xie, Fang, AAAI 2018)"
    ),
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["enhancer_gan", "enhancer_gan.*"]),
    install_requires=REQUIREMENTS,
    extras_require={
        "test": ["pytest>=7.4", "pytest-xdist>=3.5", "hypothesis>=6.90", "ruff>=0.17,<0.18"],
        # benchmarks/bench_vs_plain.py --torch and bench_strided.py --torch only; never needed to train or test.
        # 2.13.0 is a CPU build on the project's machines (plain `torch` from
        # PyPI is a CUDA build of several GB).
        "bench": ["torch==2.13.0"],
    },
)
