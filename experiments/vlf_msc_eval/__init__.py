"""What ``semcom vlf-msc-eval`` (:mod:`experiments.commands.vlf_msc_eval`) runs: the systems and metric names
(:mod:`experiments.vlf_msc_eval.systems`), the metric models (:mod:`experiments.vlf_msc_eval.scoring`), the
baselines at their channel-use budget (:mod:`experiments.vlf_msc_eval.budget`), the evaluation loop
(:mod:`experiments.vlf_msc_eval.loop`) and the tables, figures and grids (:mod:`experiments.vlf_msc_eval.outputs`)."""
