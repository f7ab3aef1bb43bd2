"""Every setting of every page, declared once: the sidebar's model and each page's own.

A :class:`Setting` says what a widget holds (its kind, default, choices or bounds), its name in a link, its
parameter in the page's notebook and whether a link may set it. The app draws its widgets from it
(``app/explorer_ui/page_state.py``), reads and writes links with it (``app/explorer_ui/url_params.py``), and each
page's notebook takes its defaults, notes and checks from it (``resnet_core.notebooks``). No other list of a
page's settings exists; ``tests/app/test_page_specs.py`` walks every page and checks its widgets against this one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .cam import COLORMAPS, METHODS
from .data import DATASETS
from .images import SAMPLE_NAMES
from .models import ARCHITECTURES, display_name
from .probes import BN_MODES
from .train import PRESETS
from .weights import WIDTH_FACTORS
from .weights.demo import DEMO_MODELS

# What a value is, which decides how a link's text is read and how a notebook's value is checked.
KINDS = ("choice", "choices", "flag", "whole", "decimal", "layer", "arch", "weights", "trained_weights", "file",
         "setting_names", "token")
# The trust table's default methods: five fast layer methods (the speed issue's benchmark set).
TRUST_DEFAULT_METHODS = ("gradcam", "gradcampp", "xgradcam", "layercam", "eigencam")
WIDGETS = ("selectbox", "multiselect", "segmented_control", "radio", "toggle", "slider", "select_slider",
           "number_input", "file_uploader")


@dataclass(frozen=True)
class Setting:
    """One setting of a page.

    ``name`` is the setting's session key and, unless ``link`` says otherwise, its name in a link and its
    notebook parameter. ``link=None``: never carried by a link (an upload); ``notebook=None``: the notebook has
    no such parameter. ``per``: the setting is held once per value of another setting (the race's fields, once
    per preset), under the session key ``f"{prefix}_{that value}_{field}"``. ``runtime_default``: the page picks
    the default from the model when the session has none (the notebook's default stands for "the page's").
    """

    name: str
    widget: str
    kind: str
    default: Any
    what: str = ""  # how a refusal names a value it wanted ("an image source")
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None
    most: int | None = None  # a multiselect's limit
    link: str | None = ""
    notebook: str | None = ""
    note: str = ""  # the notebook's comment beside the parameter
    per: str | None = None
    field: str = ""
    runtime_default: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS or self.widget not in WIDGETS:
            raise ValueError(f"Setting {self.name}: unknown kind {self.kind!r} or widget {self.widget!r}.")
        if self.link == "":
            object.__setattr__(self, "link", self.name)
        if self.notebook == "":
            object.__setattr__(self, "notebook", self.link or self.name)

    @property
    def linkable(self) -> bool:
        """Whether a link may carry (and so set) this setting."""
        return self.link is not None

    def state_key(self, owner: Any = None) -> str:
        """The session key holding the value; for a ``per`` setting, the one for ``owner`` (e.g. a preset)."""
        if self.per is None:
            return self.name
        return f"{self.per.rsplit('_', 1)[0]}_{owner}_{self.field}"


@dataclass(frozen=True)
class PageSpec:
    """A page's settings in display order, and the sidebar settings its notebook uses (with their defaults
    on this page where the page's purpose changes them, e.g. Grad-CAM explains with the demo's weights)."""

    page: str  # the URL path
    settings: tuple[Setting, ...]
    sidebar: tuple[str, ...] = ()
    sidebar_defaults: Mapping[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Setting]:
        return iter(self.settings)

    def __getitem__(self, name: str) -> Setting:
        for setting in self.settings:
            if setting.name == name:
                return setting
        raise KeyError(f"{self.page} has no setting {name!r}")

    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.settings)

    def state_keys(self) -> list[str]:
        """Every session key that holds one of this page's values (a ``per`` setting's key for every owner)."""
        keys: list[str] = []
        for setting in self.settings:
            if setting.per is None:
                keys.append(setting.name)
            else:
                keys.extend(setting.state_key(owner) for owner in self[setting.per].choices)
        return keys

    def notebook_settings(self) -> list[Setting]:
        """The settings the page's notebook takes, the sidebar's first."""
        used = [SIDEBAR[name] for name in self.sidebar]
        return [s for s in (*used, *self.settings) if s.notebook is not None]

    def notebook_defaults(self) -> dict[str, Any]:
        """The notebook's parameters and their defaults (the sidebar's as this page starts)."""
        defaults = {s.notebook: s.default for s in self.notebook_settings()}
        defaults.update(self.sidebar_defaults)
        return {name: list(value) if isinstance(value, tuple) else value for name, value in defaults.items()}

    def notebook_notes(self) -> dict[str, str]:
        return {s.notebook: s.note for s in self.notebook_settings() if s.note}


def _words(values: tuple[Any, ...]) -> str:
    return ", ".join(map(str, values))


# ----------------------------------------------------------------------------------------------- sidebar
DEFAULT_ARCH = "resnet20"
SHORTCUT_HELP = {
    "A": "A: identity, zero-padded where the shape changes (no extra weights)",
    "B": "B: projection only where the shape changes (torchvision)",
    "C": "C: projection in every block",
}
STRIDE_HELP = {"3x3": "on the 3x3 conv (torchvision, v1.5)", "1x1": "on the first 1x1 conv (the paper)"}
DEMO_WORDS = ", ".join(d.weights_id for d in DEMO_MODELS.values())
WEIGHTS_NOTE = f"random, {DEMO_WORDS}, tv:<torchvision weights> or ckpt:<file in the runs folder>"

SIDEBAR = PageSpec("sidebar", (
    Setting("sb_arch", "selectbox", "arch", DEFAULT_ARCH, "an architecture", tuple(ARCHITECTURES), link="arch",
            note="resnet18 ... resnet152, resnext50_32x4d, wide_resnet50_2, resnet20 ... resnet110"),
    Setting("sb_plain", "toggle", "flag", False, link="plain", note="True: the plain twin (no shortcuts)"),
    Setting("sb_shortcut", "radio", "choice", "A", "a shortcut option", tuple(SHORTCUT_HELP), link="shortcut",
            note="A, B or C", runtime_default=True),
    Setting("sb_stride", "radio", "choice", "3x3", "a stride placement", tuple(STRIDE_HELP), link="stride",
            note="bottleneck nets: '3x3' (torchvision) or '1x1' (the paper)"),
    Setting("sb_preact", "toggle", "flag", False, link="preact"),
    Setting("sb_width", "segmented_control", "choice", "full", "a width", tuple(WIDTH_FACTORS), link="width",
            note="full, half or quarter"),
    Setting("sb_weights", "selectbox", "weights", "random", link="weights", note=WEIGHTS_NOTE,
            runtime_default=True),
))
MODEL_SETTINGS = ("arch", "plain", "shortcut", "stride", "preact", "width")  # the net, without its weights
SIDEBAR_NAMES = (*MODEL_SETTINGS, "weights")


def _sidebar(link_names: tuple[str, ...]) -> tuple[str, ...]:
    by_link = {s.link: s.name for s in SIDEBAR}
    return tuple(by_link[name] for name in link_names)


# ----------------------------------------------------------------------------------------- architecture
ARCHITECTURE = PageSpec("architecture", (), sidebar=_sidebar(MODEL_SETTINGS))

# ------------------------------------------------------------------------------------------ activations
ACT_SHAPES_COUNT = 24
ACTIVATIONS = PageSpec("activations", (
    Setting("act_source", "segmented_control", "choice", "photo", "an image source", ("photo", "shapes", "upload"),
            note="photo, shapes or upload"),
    Setting("act_photo", "selectbox", "choice", SAMPLE_NAMES[0], "a sample photo", tuple(SAMPLE_NAMES),
            note=_words(tuple(SAMPLE_NAMES))),
    Setting("act_shape", "number_input", "whole", 0, "a Shapes image", low=0, high=ACT_SHAPES_COUNT - 1,
            note=f"a Shapes image, 0-{ACT_SHAPES_COUNT - 1}"),
    Setting("act_batch", "select_slider", "choice", 8, "a batch size the page offers", (1, 2, 4, 8, 16),
            note="1, 2, 4, 8, 16 (the page starts ImageNet nets at 4)", runtime_default=True),
    Setting("act_bn", "segmented_control", "choice", "batch", "a batch-norm mode", tuple(BN_MODES),
            note="batch (the batch's statistics) or running (the stored ones)", runtime_default=True),
    Setting("act_layer", "select_slider", "layer", "", note="a layer name such as 'layer2.0.tap_out'; empty: the "
            "page's default", runtime_default=True),
    Setting("act_upload", "file_uploader", "file", "", link=None,
            note="the image file for act_source 'upload' (a path beside this notebook)"),
), sidebar=_sidebar(SIDEBAR_NAMES))

# ---------------------------------------------------------------------------------------- gradient flow
GRADIENT_FLOW = PageSpec("gradient-flow", (
    Setting("gf_state", "segmented_control", "choice", "init", "a state the page offers", ("init", "trained"),
            note="init, or trained (with trained weights)"),
    Setting("gf_batch", "select_slider", "choice", 16, "a batch size the page offers", (2, 4, 8, 16, 32),
            note="2, 4, 8, 16, 32 (the page starts ImageNet nets at 4)", runtime_default=True),
    Setting("gf_bn", "segmented_control", "choice", "batch", "a batch-norm mode", tuple(BN_MODES),
            note="batch (the batch's statistics) or running (the stored ones)", runtime_default=True),
), sidebar=_sidebar(SIDEBAR_NAMES))

# --------------------------------------------------------------------------------------------- Grad-CAM
GC_SHAPES_COUNT = 64  # held-out Shapes images to pick from
GC_MAX_CLASSES = 1000  # the largest head ResNet Explorer loads (ImageNet); the page checks the model's own
GRAD_CAM = PageSpec("grad-cam", (
    Setting("gc_source", "segmented_control", "choice", "shapes", "an image source", ("photo", "upload", "shapes"),
            note="photo, shapes or upload", runtime_default=True),
    Setting("gc_sample", "selectbox", "choice", SAMPLE_NAMES[0], "a sample photo", tuple(SAMPLE_NAMES),
            note=_words(tuple(SAMPLE_NAMES))),
    Setting("gc_shape", "number_input", "whole", 0, "a Shapes image", low=0, high=GC_SHAPES_COUNT - 1,
            note=f"a held-out Shapes image, 0-{GC_SHAPES_COUNT - 1}"),
    Setting("gc_class", "radio", "whole", None, "a class number", low=0, high=GC_MAX_CLASSES - 1,
            note="a class of the image's top 5; None: its top class", runtime_default=True),
    Setting("gc_other", "selectbox", "whole", None, "a class number", low=0, high=GC_MAX_CLASSES - 1,
            note="any class number (overrides gc_class); None: none", runtime_default=True),
    Setting("gc_method", "selectbox", "choice", "gradcam", "an explanation method", tuple(METHODS),
            note=_words(tuple(METHODS))),
    Setting("gc_layer", "selectbox", "layer", "", note="a layer such as 'layer3.2'; empty: the last block",
            runtime_default=True),
    Setting("gc_opacity", "slider", "decimal", 0.5, "an opacity", low=0.0, high=1.0, step=0.05, note="0 to 1"),
    Setting("gc_cmap", "selectbox", "choice", COLORMAPS[0], "a colormap", tuple(COLORMAPS),
            note=_words(tuple(COLORMAPS))),
    Setting("gc_methods", "multiselect", "choices", tuple(METHODS), "explanation methods", tuple(METHODS),
            note="the methods compared side by side"),
    Setting("gc_road", "toggle", "flag", False, note="also score ROAD (Rong et al. 2022)"),
    Setting("gc_trust_methods", "multiselect", "choices", TRUST_DEFAULT_METHODS, "explanation methods",
            tuple(METHODS), note="the methods whose trust is scored in six categories"),
    Setting("gc_trust_samples", "slider", "whole", 10, "a number of noisy copies", low=1, high=50, step=1,
            note="noisy copies of the image for the robustness metrics"),
    Setting("gc_compare", "toggle", "flag", False, note="also explain the last block of each stage"),
    Setting("gc_check_own", "toggle", "flag", True, runtime_default=True,
            note="check this model (a Shapes model) rather than the embedded demo ResNet-20"),
    Setting("gc_upload", "file_uploader", "file", "", link=None,
            note="the image file for gc_source 'upload' (a path beside this notebook)"),
), sidebar=_sidebar(SIDEBAR_NAMES), sidebar_defaults={"weights": "demo:resnet20"})

# -------------------------------------------------------------------------------------------- training
TR_CUSTOM = "Custom race"
TR_DEFAULT_PRESET = "Plain-20 vs ResNet-20"
TR_RACE_ARCHS = ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110")
TR_RACERS = tuple(display_name(a, r) for a in TR_RACE_ARCHS for r in (False, True))
TR_MAX_RACERS = 4
TR_SCHEDULES = ("step", "cosine", "constant")
_BASE = PRESETS[TR_DEFAULT_PRESET]


def _race_field(field_name: str, widget: str, kind: str, default: Any, what: str, **more: Any) -> Setting:
    return Setting(f"tr_{field_name}", widget, kind, default, what, per="tr_preset", field=field_name, **more)


TRAINING = PageSpec("training", (
    Setting("tr_preset", "selectbox", "choice", TR_DEFAULT_PRESET, "a race the page offers",
            (*PRESETS, TR_CUSTOM), note=f"one of {', '.join(map(repr, [*PRESETS, TR_CUSTOM]))}"),
    _race_field("racers", "multiselect", "choices", ("Plain-20", "ResNet-20"), "racers", choices=TR_RACERS,
                most=TR_MAX_RACERS,
                note=f"{TR_CUSTOM} only: 2 to 4 labels such as Plain-56,ResNet-56 (20, 32, 44, 56, 110 layers)"),
    _race_field("data", "selectbox", "choice", _BASE.dataset, "a data set", choices=tuple(DATASETS),
                note="shapes (built in) or cifar10 (downloaded when missing)"),
    _race_field("steps", "number_input", "whole", _BASE.steps, "a number of steps", low=10, high=20_000, step=50,
                note="training steps"),
    _race_field("batch", "number_input", "whole", _BASE.batch_size, "a batch size", low=2, high=1024, step=16),
    _race_field("lr", "number_input", "decimal", _BASE.lr, "a learning rate", low=0.0001, high=2.0, step=0.01,
                note="peak learning rate (after the linear warm-up)"),
    _race_field("warmup", "number_input", "whole", _BASE.warmup_steps, "a number of warm-up steps", low=0,
                high=5000, step=10, note="warm-up steps"),
    _race_field("width", "number_input", "whole", _BASE.width or 16, "a width", low=2, high=64,
                note="channels of the first stage (the paper: 16)"),
    _race_field("size", "number_input", "whole", _BASE.image_size, "an image size", low=8, high=64, step=4,
                note="image size in pixels"),
    _race_field("schedule", "selectbox", "choice", _BASE.schedule, "a schedule", choices=TR_SCHEDULES,
                note="step (x0.1 at 50% and 75%), cosine or constant"),
))

# ---------------------------------------------------------------------------------------------- lesson
LESSON_GRIDS = (11, 21, 31)
LESSON_MAX_BLOCKS = 200
LESSON = PageSpec("why-residuals", (
    Setting("lesson_zero_init", "toggle", "flag", False,
            note="step 3: start every residual branch at zero (zero_init_residual)"),
    Setting("lesson_blocks", "slider", "whole", 54, "a number of blocks", low=1, high=LESSON_MAX_BLOCKS,
            note=f"step 5: residual blocks to unroll (1 to {LESSON_MAX_BLOCKS})"),
    Setting("lesson_grid", "select_slider", "choice", LESSON_GRIDS[0], "a grid the lesson offers", LESSON_GRIDS,
            note="step 6: points per side of the loss landscape (11, 21 or 31)"),
    Setting("lesson_any_model", "selectbox", "trained_weights", "",
            note=f"any trained net: {DEMO_WORDS} or ckpt:<file in the runs folder>; empty: skip that section", runtime_default=True),
    Setting("lesson_any_grid", "select_slider", "choice", LESSON_GRIDS[0], "a grid the lesson offers",
            LESSON_GRIDS, note="its landscape grid (11, 21 or 31)"),
    Setting("lesson_any_data", "selectbox", "choice", "recorded", "a data set the lesson offers",
            ("recorded", *DATASETS),
            note="its images: recorded (the data set it was trained on), shapes, cifar10, mnist, ..."),
))

# Every page by URL path, in the app's navigation order.
PAGE_SPECS: dict[str, PageSpec] = {spec.page: spec for spec in (ARCHITECTURE, LESSON, ACTIVATIONS, GRADIENT_FLOW,
                                                                TRAINING, GRAD_CAM)}
# Link parameters that belong to no page and no widget: the app reads them on every page. ``lock=`` names
# settings (by their link names) whose widgets a link hides, holding the values it gives (teacher mode).
LOCKABLE: tuple[str, ...] = tuple(s.link for spec in (SIDEBAR, *PAGE_SPECS.values()) for s in spec if s.linkable)
APP_WIDE: tuple[Setting, ...] = (
    Setting("lock", "multiselect", "setting_names", (), "this app's setting names", LOCKABLE, notebook=None,
            note="settings whose widgets the link hides (their values hold)"),
    Setting("reveal", "toggle", "flag", False, notebook=None, note="show every answer without asking first"),
    Setting("present", "toggle", "flag", False, notebook=None,
            note="presenter view: sidebar folded, large text, the lesson one step per screen"),
    Setting("poll", "selectbox", "token", "", "a poll id", notebook=None, note="the class poll this link answers"),
    Setting("key", "selectbox", "token", "", "a teacher's key", notebook=None,
            note="the key that opens the poll's teacher view"),
)


def all_specs() -> tuple[PageSpec, ...]:
    """The sidebar's spec, then every page's."""
    return (SIDEBAR, *PAGE_SPECS.values())


def link_settings() -> list[Setting]:
    """Every setting a link may carry, in reading order (the architecture before the weights it must fit)."""
    return [s for spec in all_specs() for s in spec if s.linkable] + list(APP_WIDE)


def setting_for_link(name: str) -> Setting | None:
    """The setting whose link name is ``name``, or None."""
    return next((s for s in link_settings() if s.link == name), None)


__all__ = ["LOCKABLE", "ACTIVATIONS", "ACT_SHAPES_COUNT", "GC_MAX_CLASSES", "GC_SHAPES_COUNT", "LESSON_GRIDS",
           "LESSON_MAX_BLOCKS", "TR_CUSTOM", "TR_DEFAULT_PRESET", "TR_MAX_RACERS", "TR_RACERS", "TR_RACE_ARCHS",
           "TR_SCHEDULES", "WEIGHTS_NOTE", "APP_WIDE", "ARCHITECTURE", "DEFAULT_ARCH", "GRADIENT_FLOW", "GRAD_CAM", "KINDS",
           "LESSON", "MODEL_SETTINGS", "PAGE_SPECS", "SHORTCUT_HELP", "SIDEBAR", "SIDEBAR_NAMES", "STRIDE_HELP",
           "TRAINING", "WIDGETS", "PageSpec", "Setting", "all_specs", "link_settings", "setting_for_link"]
