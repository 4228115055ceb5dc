"""What ``semcom semclip-eval`` (:mod:`experiments.commands.semclip_eval`) runs: the run context
(:mod:`experiments.semclip_eval.context`), the systems and one evaluation point
(:mod:`experiments.semclip_eval.systems`), the studies (:mod:`experiments.semclip_eval.studies`)."""
