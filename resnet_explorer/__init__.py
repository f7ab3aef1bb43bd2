"""ResNet Explorer, the app, as installed: ``resnet-explorer`` starts it (:mod:`resnet_explorer.launch`).

The repository's ``app/`` and ``pages/`` stay the source (``streamlit run app/main.py`` in a checkout). A wheel or
sdist maps them in as ``resnet_explorer/app`` and ``resnet_explorer/pages`` (setup.py), so nothing but
``resnet_core`` and ``resnet_explorer`` lands at the top of site-packages. The app's own helpers
(``explorer_ui``) live inside ``resnet_explorer/app``: Streamlit puts the main script's folder on the path of
the server it runs, as it does in a checkout.
"""

__all__: list[str] = []
