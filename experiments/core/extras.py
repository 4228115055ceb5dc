"""Optional dependencies: which ``pip`` extra provides which package, and the one-line error when one is missing.

The main job (``semcom run``, ``ber``, ``compare``, ``channel``) needs only the packages of
``install_requires``. The other commands need an extra (``setup.cfg``, kept in step with :data:`EXTRAS`
by ``tests/test_extras.py``); when one of its packages is missing, the command stops with one line that
names the package and the exact command that installs the extra, and exit code 2::

    semcom vlf-msc: error: needs the package 'diffusers', which is not installed; install the vlf-msc extra:
    pip install -c constraints.txt -e ".[vlf-msc]"

Example
-------
>>> extra_for("open_clip", command="semclip-eval")
'semclip'
>>> install_line("semclip")
'pip install -c constraints.txt -e ".[semclip]"'
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

__all__ = ["EXTRAS", "IMPORT_NAMES", "COMMAND_EXTRAS", "MissingExtraError", "install_line", "extra_for",
           "missing_extra", "missing_extra_message"]

#: extra -> the distributions it adds to ``install_requires`` (as setup.cfg lists them, without pins).
EXTRAS: Dict[str, Tuple[str, ...]] = {
    "vlf-msc": ("torchvision", "pillow", "diffusers", "accelerate", "open_clip_torch", "lpips", "torchmetrics",
                "bert-score"),
    "semclip": ("torchvision", "pillow", "diffusers", "open_clip_torch", "torchmetrics"),
    "tf": ("tensorflow-cpu",),
    "ray": ("ray",),
    "docs": ("sphinx", "sphinx-gallery", "myst-parser"),
    # the docs packages: tests/test_docs_site.py builds the documentation site
    "test": ("pytest", "pytest-timeout", "sphinx", "sphinx-gallery", "myst-parser"),
}
EXTRAS["all"] = tuple(dict.fromkeys(d for e in ("vlf-msc", "semclip", "tf", "ray", "docs", "test")
                                    for d in EXTRAS[e]))

#: top-level import name -> distribution name, for the optional packages whose names differ.
IMPORT_NAMES: Dict[str, str] = {
    "PIL": "pillow",
    "open_clip": "open_clip_torch",
    "bert_score": "bert-score",
    "tensorflow": "tensorflow-cpu",
    "pytest_timeout": "pytest-timeout",
}

#: ``semcom`` command -> the extra it needs. Commands not listed need none, except ``reproduce``, whose
#: configs run either system: a missing package there names the smallest extra that provides it.
COMMAND_EXTRAS: Dict[str, str] = {
    "vlf-msc": "vlf-msc",
    "train-image-decoder": "vlf-msc",
    "train-text-projection": "vlf-msc",
    "blip2-captions": "vlf-msc",
    "train-deepsc": "vlf-msc",
    "vlf-msc-eval": "vlf-msc",
    "semclip": "semclip",
    "semclip-eval": "semclip",
}


class MissingExtraError(ModuleNotFoundError):
    """An optional package is missing; the message names it and the ``pip install`` line of its extra.

    Examples
    --------
    >>> err = missing_extra("ray")
    >>> isinstance(err, MissingExtraError), isinstance(err, ImportError)
    (True, True)
    """


def install_line(extra: str) -> str:
    """The command that installs ``extra`` from a checkout (through the constraints file).

    Examples
    --------
    >>> install_line("tf")
    'pip install -c constraints.txt -e ".[tf]"'
    """
    if extra not in EXTRAS:
        raise ValueError(f"extra must be one of {sorted(EXTRAS)}, got {extra!r}")
    return f'pip install -c constraints.txt -e ".[{extra}]"'


def _distribution(module: str) -> str:
    top = module.split(".")[0]
    return IMPORT_NAMES.get(top, top)


def extra_for(module: str, command: Optional[str] = None) -> Optional[str]:
    """The extra that provides the package of ``module`` (an import name): ``command``'s own extra when it
    does, else the smallest extra that does; ``None`` when none does (a package of the main job, or not ours).

    Examples
    --------
    >>> extra_for("open_clip"), extra_for("torch"), extra_for("diffusers", command="semclip")
    ('semclip', None, 'semclip')
    """
    dist = _distribution(module).lower().replace("_", "-")
    owners = [e for e, dists in EXTRAS.items() if dist in {d.lower().replace("_", "-") for d in dists}]
    if not owners:
        return None
    preferred = COMMAND_EXTRAS.get(command or "")
    if preferred in owners:
        return preferred
    return min(owners, key=lambda e: len(EXTRAS[e]))


def missing_extra_message(module: str, command: Optional[str] = None) -> Optional[str]:
    """The error text for a missing ``module``, or ``None`` when no extra provides it.

    Examples
    --------
    >>> missing_extra_message("torch") is None          # a package of the main job: no extra
    True
    >>> print(missing_extra_message("ray"))
    needs the package 'ray', which is not installed; install the ray extra: pip install -c constraints.txt -e ".[ray]"
    """
    extra = extra_for(module, command)
    if extra is None:
        return None
    return (f"needs the package {_distribution(module)!r}, which is not installed; install the {extra} extra: "
            f"{install_line(extra)}")


def missing_extra(module: str, command: Optional[str] = None) -> MissingExtraError:
    """A :class:`MissingExtraError` for ``module`` (to ``raise ... from None`` in a lazy import).

    Examples
    --------
    >>> print(missing_extra("ray"))
    needs the package 'ray', which is not installed; install the ray extra: pip install -c constraints.txt -e ".[ray]"
    """
    text = missing_extra_message(module, command) or f"needs the package {_distribution(module)!r}"
    return MissingExtraError(text, name=module.split(".")[0])
