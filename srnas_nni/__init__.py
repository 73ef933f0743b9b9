"""srnas-nni: neural architecture search for single-image super-resolution on NNI 3.0.

The package is split by concept: ``evaluation`` (data, imresize, metrics, cost, training, the
multi-trial and one-shot NNI evaluators), ``spaces`` (the five SR search spaces as NNI model spaces,
with the papers' architectures as presets), ``strategies`` (search strategies by name, the Pareto
archive, Optuna samplers, SparsestMax), ``baselines`` (hand-designed reference networks), ``ops``
(shared SR building blocks), ``models`` (name -> builder registry, model specs and files), ``cli``
(the ``srnas`` command).
"""

__version__ = "0.1.0"
