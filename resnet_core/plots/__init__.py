"""Figures: one module per subject, each figure built by a function from a library result (never from a page).

The modules are the addresses: ``from resnet_core.plots.cam import cam_figure``. ``style`` holds the shared
look (projector-legible sizes, the legend's place, one colour per net).
"""

from . import (
    architecture,
    cam,
    cam_methods,
    cam_trust,
    instruments,
    landscape,
    lesion,
    lesson,
    style,
    training,
)

__all__ = ["architecture", "cam", "cam_methods", "cam_trust", "instruments", "landscape", "lesion", "lesson", "style", "training"]
