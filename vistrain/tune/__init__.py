"""``vistrain tune``: hyper-parameter and augmentation-policy search on Optuna.

- :mod:`vistrain.tune.space`: the search space file (config keys and their distributions) and sampling it;
- :mod:`vistrain.tune.study`: the study folder, Optuna storages, samplers and pruners, the trial budget and
  the heartbeat that finds the trials of killed workers;
- :mod:`vistrain.tune.worker`: one worker process running trials (each an ordinary run folder) until the
  study has its trials;
- :mod:`vistrain.tune.summary`: what a study holds, for the console, ``tune report`` and ``--best-config``.
"""
