"""``python -m resnet_core.train``: the ``resnet-train`` command line (it lives in ``cli``)."""

if __name__ == "__main__":
    from resnet_core.cli import train_main

    raise SystemExit(train_main())
