"""The packages of the wheel and sdist (the metadata is in pyproject.toml).

``app/`` and ``pages/`` stay the source of the app (``streamlit run app/main.py`` in a checkout); they are mapped
into the project's own namespace, ``resnet_explorer.app`` and ``resnet_explorer.pages``, so that an install puts
only ``resnet_core`` and ``resnet_explorer`` at the top of site-packages. pyproject.toml cannot rename a folder
on its way into a package, hence this file.
"""

from setuptools import find_packages, setup

APP = {
    "resnet_explorer.app": "app",
    "resnet_explorer.app.explorer_ui": "app/explorer_ui",
    "resnet_explorer.app.assets": "app/assets",  # the favicon: data only, listed so setuptools keeps it
    "resnet_explorer.pages": "pages",
}

setup(
    packages=[*find_packages(include=["resnet_core", "resnet_core.*", "resnet_explorer"]), *APP],
    package_dir=APP,
    package_data={
        # The embedded demo models (make demo-models).
        "resnet_core.weights.demo_models": ["*.pt", "*.json", "*.csv"],
        # The app's own Streamlit settings (read beside main.py) and its favicon.
        "resnet_explorer.app": [".streamlit/config.toml"],
        "resnet_explorer.app.assets": ["*.png"],
    },
)
