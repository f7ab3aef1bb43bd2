"""Package data: the embedded demo models (``resnet20.pt``, ``plain20.pt``), ``metrics.json``, ``history.csv`` and
``checks.json``. Written by ``make demo-models`` (tools/make_demo_models.py); read through
:mod:`resnet_core.weights.demo`. It holds files, not names.
"""

__all__: list[str] = []
