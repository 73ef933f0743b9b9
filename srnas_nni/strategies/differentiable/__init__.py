"""The differentiable (DARTS-style, one-shot) strategies: relax every categorical choice of a space
into architecture weights and train them with the supernet.

* :mod:`.base`: what the three share, on top of NNI's ``DARTS``: the options every one takes
  (:class:`~.base.DifferentiableOptions`), bilevel or single-level steps, a warm-up, an expected-cost
  penalty that reaches the architecture weights, mixtures that skip zero-weight candidates, export
  of the derived architecture and of the probabilities, and search state that Lightning checkpoints
  resume.
* :mod:`.sparsestmax`: the SparsestMax relaxation (sparse, then exactly one-hot as its radius grows
  to 1) and the radius schedules.
* The strategies, each one module registering one name with its options dataclass:
  :mod:`.sparsestmax_darts` (``sparsestmax_darts``, Trilevel NAS), :mod:`.dlsr` (``dlsr``, DLSR) and
  :mod:`.hinas` (``hinas``, HiNAS).

Importing this package imports none of them (torch and NNI load with the strategy modules, which
:mod:`srnas_nni.strategies` imports by name).
"""
