"""One module per ``semcom`` subcommand (each defines ``add_arguments(parser)`` and ``main(args)``):
the studies (``ber``, ``compare``, ``run``, VLF-MSC and SemCLIP ones, ``reproduce``) and the tools
(``channel``, ``plot``, ``rerun``), built on :mod:`experiments.core` (``compare`` also on
:mod:`experiments.comparison` and :mod:`experiments.schemes`)."""
