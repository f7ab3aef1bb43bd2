"""``python -m resnet_core.weights``: the ``resnet-weights`` command line (it lives in ``cli``)."""

if __name__ == "__main__":
    from resnet_core.cli import weights_main

    raise SystemExit(weights_main())
