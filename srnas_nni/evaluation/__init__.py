"""Evaluation layer: how an SR candidate is trained, scored and costed, the same way for every strategy.

Modules (import the one you need; this package imports none of them, so ``import srnas_nni.evaluation``
loads neither torch nor NNI):

* :mod:`~srnas_nni.evaluation.images` - image files to ``uint8`` arrays (:func:`read_image`),
  folder listings, header-only checks and their cache.
* Data (``from srnas_nni.evaluation.data import ...`` reaches every name below):

  - :mod:`~srnas_nni.evaluation.data` - the data sets (image folder, DIV2K, builtin photos) and
    :func:`open_dataset`, which picks one from a data spec;
  - :mod:`~srnas_nni.evaluation.pairs` - :class:`SRPair`, the LR degradation (``modcrop``,
    MATLAB-bicubic ``bicubic_lr``), ``uint8`` to float tensors, the skipped-image warning;
  - :mod:`~srnas_nni.evaluation.specs` - what a data spec names: builtin photos, DIV2K-style layouts;
  - :mod:`~srnas_nni.evaluation.patches` - :class:`PatchSampler`, random aligned training patches;
  - :mod:`~srnas_nni.evaluation.data_checks` - :func:`check_images`, every image of a spec checked
    by its header before a run.

* :mod:`~srnas_nni.evaluation.metrics` - PSNR and SSIM as SR papers measure them (Y channel, border
  crop, 8 bit).
* :mod:`~srnas_nni.evaluation.validation` - whole-image validation of a model on a data set;
  :func:`super_resolve` for one image.
* :mod:`~srnas_nni.evaluation.upscale` - super-resolving images of any size tile by tile.
* :mod:`~srnas_nni.evaluation.cost` - parameters and Mult-Adds by the literature's convention.
* :mod:`~srnas_nni.evaluation.losses` - training losses by name.
* :mod:`~srnas_nni.evaluation.trainer` - :class:`Trainer`: a frozen model trained within a step
  budget, validated, checkpointed and resumable.
* :mod:`~srnas_nni.evaluation.objectives` - scalarisations of the multi-objective result.
* :mod:`~srnas_nni.evaluation.evaluator` - :class:`SREvaluator`, the multi-trial NNI evaluator
  (train, validate, cost, report), and :func:`evaluate_sr_model` for one candidate.
* :mod:`~srnas_nni.evaluation.lightning` - the Lightning evaluator of one-shot (supernet) strategies,
  with data-parallel training.

Imports: this layer may import the basics (``errors``, ``registry``, ``runtime``), ``study``,
``nni_adapter`` (every NNI name it uses comes from there) and ``models`` (``models.imresize`` for
the LR degradation, ``models.registry`` for model files); never ``spaces``, ``strategies``,
``run``, ``results`` or ``cli``.
"""
