"""Package data: the embedded demo models (``resnet20.pt``, ``plain20.pt``), ``metrics.json`` and ``history.csv``.

Written by ``make demo-models`` (tools/make_demo_models.py); read through :mod:`resnet_core.demo`.
"""
