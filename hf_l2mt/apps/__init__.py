"""Applications built on the core, data and evaluation packages, one package each: the ``hf-l2mt`` command
(``cli``) and what every command shares (``terminal``: flags, settings, progress lines); ``recipes`` (train),
``translation`` (evaluate, translate), ``fisher``, ``report``, ``search``, ``plots``, ``export``, ``weights``
(average), ``publish`` (model card, Hub) and ``demo``. The packages import each other without a circle."""
