"""The Optuna side of srnas-nni: the study contract every search writes to.

* :mod:`.objectives` -- the three objectives (PSNR up, parameters down, Mult-Adds down), the study's
  metric names and directions, the vector a trial is told, Pareto dominance.
* :mod:`.front` -- the non-dominated complete trials of a study (``pareto.json``'s front).
* :mod:`.keys` -- samples as plain data; a short stable name and a canonical key per architecture.
* :mod:`.storage` -- ``open_study`` (in memory, SQLite, PostgreSQL) and the samplers by name.
* :mod:`.evolution_sampler` -- aging evolution as an Optuna sampler (the study is the population).
* :mod:`.sampler_state` -- an Optuna search's state as plain data, for checkpoints that survive upgrades.

Layer: imports only the basics (:mod:`srnas_nni.errors`, ...), Optuna and numpy -- no torch, no NNI --
so that workers, the nnictl tuner (10 s to connect), plots and exports share it cheaply.
"""
