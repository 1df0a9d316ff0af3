"""Experiments on the DUS environment: comparisons of sampling policies x learners x
data sets x seeds (``mmenv compare``, :mod:`mmenv.experiments.compare`), with their configs
(``experiments/configs/*.yaml``), result tables and figures. See ``docs/experiments.md``.
"""
