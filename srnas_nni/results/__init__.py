"""What a finished search hands back: ``srnas export`` (:mod:`.export`), Pareto plots (:mod:`.plots`) and
optuna-dashboard on the run's study (:mod:`.dashboard`).

Layer: reads run folders and studies; imports the layers beneath (basics, study, models, spaces, run).
"""
