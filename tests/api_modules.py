"""The package modules the API reference documents: every module of the four top-level packages, discovered
with :func:`pkgutil.walk_packages` as ``docs/api/conf.py`` does (shared by ``test_api_docs`` and
``test_docstrings``)."""
import importlib
import pkgutil

PACKAGES = ("phy", "semantic", "baselines", "experiments")


def module_names():
    names = []
    for pkg_name in PACKAGES:
        pkg = importlib.import_module(pkg_name)
        names.append(pkg_name)
        names += [info.name for info in pkgutil.walk_packages(pkg.__path__, prefix=pkg_name + ".")]
    return names
