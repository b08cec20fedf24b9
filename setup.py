"""The package list, beyond what pyproject.toml declares: the repository's top-level models/ folder (the
deployed bundles) ships inside the package as ``geodrain.deployed``, found with importlib.resources
(:func:`geodrain.model.bundle.models_dir`; a source checkout falls back to models/ itself)."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["geodrain", "geodrain.*"]) + ["geodrain.deployed"],
    package_dir={"geodrain.deployed": "models"},
    package_data={"geodrain.deployed": ["DEFAULT", "*/*"]},
)
