"""Running a search: from an experiment file to a study, a run folder and a Pareto front.

* :mod:`.config` -- experiment files: schema, validation (one ``ConfigError`` line per problem),
  ``--set`` overrides, ``--smoke``; the validated space and strategy are the ones that run.
* :mod:`.search` -- ``run_search``: an experiment file as an NNI experiment (sequential engine or NNI's
  manager), resume, progress, one-shot results.
* :mod:`.recorder` -- the run's Optuna study: every evaluated architecture told once, ``pareto.json``.
* :mod:`.worker` -- ``srnas worker``: many processes on one shared study (admission, heartbeats, retries).
* :mod:`.nnictl_trial` -- the trial process of an nnictl experiment (``python -m srnas_nni.nni_trial``).

Layer: imports every layer beneath (basics, study, nni_adapter, models, evaluation, spaces, strategies).
"""
