"""srnas-nni: neural architecture search for single-image super-resolution on NNI 3.0.

The package is split by concept: ``evaluation`` (data, imresize, metrics, cost, training, the
NNI evaluator), ``baselines`` (hand-designed reference networks), ``models`` (name -> builder
registry), ``cli`` (the ``srnas`` command).
"""

__version__ = "0.1.0"
