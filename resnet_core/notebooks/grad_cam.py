"""The Grad-CAM page as a notebook: the top classes of one image, where the net looks for a class at a layer,
every method side by side with faithfulness scores, trust scores in six categories, layer by layer, and the
localisation checks on Shapes."""

from __future__ import annotations

from typing import Any

from nbformat import NotebookNode

from ..page_specs import GRAD_CAM
from ._cells import code, md, model_cell, options_cell, summary_cell

TITLE = "Grad-CAM"
SPEC = GRAD_CAM
FAITHFULNESS_STEPS = 20  # the page's deletion / insertion steps per map


def cells(settings: dict[str, Any]) -> list[NotebookNode]:
    return [*_map_cells(), *_check_cells()]


def _map_cells() -> list[NotebookNode]:
    """The intro, the model and image, the top 5 and the map of the chosen class."""
    return [
        md("""\
## What this view shows
Where the net looks when it decides on a class: Grad-CAM weighs a layer's feature maps by the gradient of the
class's score and keeps the positive evidence; the map is normalised by its maximum and drawn over the image as
the model sees it. Other methods (Grad-CAM++, Score-CAM, integrated gradients, occlusion...) are compared side by
side and scored for faithfulness: put the most salient pixels back first (insertion AUC, higher is better) or take
them away first (deletion AUC, lower is better). Two checks on the built-in Shapes set, whose images come with
object masks: the pointing game (does the map's peak fall on the object?) and the randomisation cascade (a map
that explains the model must change when its weights are randomised). `SMALL` compares two methods with fewer
steps and checks on fewer images."""),
        options_cell(),
        model_cell(),
        code('''\
from resnet_core import cam
from resnet_core.data import SHAPES_CLASSES, shapes_split
from resnet_core.images import decode_image, model_view, preprocess, sample_images, to_pil
from resnet_core.weights import class_names_for, preprocessing_for

names = class_names_for(model)
prep = preprocessing_for(model)
# The image, as the page picks it: a sample photo, a held-out Shapes image (64 of them) or an uploaded file.
source = SETTINGS["gc_source"]
if source == "shapes":
    pool = shapes_split("test", 64, image_size=prep.crop if prep.crop <= 64 else 32)
    image = to_pil(pool.images, SETTINGS["gc_shape"])
    print(f"Held-out Shapes image {SETTINGS['gc_shape']}: a {SHAPES_CLASSES[int(pool.labels[SETTINGS['gc_shape']])]}")
elif source == "upload":
    if not SETTINGS["gc_upload"]:
        raise FileNotFoundError("gc_source is 'upload': set SETTINGS['gc_upload'] to the image file's path.")
    image = decode_image(open(SETTINGS["gc_upload"], "rb").read())
else:
    image = sample_images()[SETTINGS["gc_sample"]]
x = preprocess(image, prep).to(DEVICE)
view = model_view(image, prep)  # the image as the model sees it (resized, centre-cropped)
print(f"Input: {prep.describe()}")'''),
        md("## Top 5, and the class to explain"),
        code('''\
from resnet_core.plots.cam import topk_figure

table = cam.predict(model, x, names, k=5)
topk_figure(table).show()
top5 = [int(i) for i in table["index"]]
# "...or any class" wins; else the chosen top-5 class; else the image's top class.
target = SETTINGS["gc_other"] if SETTINGS["gc_other"] is not None else (
    SETTINGS["gc_class"] if SETTINGS["gc_class"] in top5 else top5[0])
table[["rank", "class", "probability"]]'''),
        md("## Where the net looks"),
        code('''\
from resnet_core.plots.cam import cam_figure

method = SETTINGS["gc_method"]
layer = SETTINGS["gc_layer"] if SETTINGS["gc_layer"] in cam.layer_choices(model) else cam.default_layer(model)
explanation = cam.explain(model, x, target, layer, method, class_names=names)
for note in explanation.notes:
    print(note)
cam_figure(explanation, view, SETTINGS["gc_cmap"], SETTINGS["gc_opacity"]).show()
if explanation.no_positive_evidence:
    print(explanation.message)
print(f"{cam.METHODS[method]} at {explanation.layer or 'the input'}: score of '{explanation.class_name}': "
      f"logit {explanation.score:.3f}")'''),
    ]


def _check_cells() -> list[NotebookNode]:
    """Every method side by side, layer by layer, the localisation checks and the key numbers."""
    return [
        md("## Every method side by side\nRanked by insertion minus deletion AUC (Petsiuk et al. 2018)."),
        code(f'''\
from resnet_core.plots.cam_methods import methods_grid_figure

methods = SETTINGS["gc_methods"][:2] if SMALL else SETTINGS["gc_methods"]
comparison = None
if methods:
    comparison = cam.compare_methods(model, x, target, layer, methods, class_names=names,
                                     steps=5 if SMALL else {FAITHFULNESS_STEPS}, road=SETTINGS["gc_road"])
    for note in comparison.notes:
        print(note)
    methods_grid_figure(comparison, view, SETTINGS["gc_cmap"], SETTINGS["gc_opacity"]).show()
    print(f"Which to trust: {{comparison.sentence}}")
    display(comparison.table)'''),
        md("""\
## Which map to trust, by six standards
Quantus's six categories of evidence (`cam.trust_scores`): faithfulness, robustness (the map under small input
noise), localisation (only where object masks exist: a Shapes image), complexity, randomisation (the map after the
weights are randomised, and for another class) and axiomatic (completeness, input invariance). Each metric is
coloured on its own scale; the arrow marks the better direction."""),
        code('''\
from resnet_core.images import preprocess_mask
from resnet_core.plots.cam_trust import trust_figure

trust_methods = SETTINGS["gc_trust_methods"][:2] if SMALL else SETTINGS["gc_trust_methods"]
trust = None
if trust_methods:
    samples = 2 if SMALL else SETTINGS["gc_trust_samples"]
    mask = preprocess_mask(pool.masks[SETTINGS["gc_shape"]], prep) if source == "shapes" else None
    print(cam.trust_plan_sentence(cam.trust_plan(model, x, trust_methods, layer, samples)))
    trust = cam.trust_scores(model, x, trust_methods, target, layer, masks=mask, samples=samples)
    trust_figure(trust).show()
    print(cam.trust_verdict(trust))
    for note in trust.attrs["notes"]:
        print(note)'''),
        md("## Layer by layer\nGrad-CAM at the end of each stage, shallow to deep, for the same class "
           "(with `gc_compare`)."),
        code('''\
from resnet_core.plots.cam import layers_figure

if SETTINGS["gc_compare"]:
    stack = cam.explain_layers(model, x, target, method="gradcam", class_names=names)
    layers_figure(stack, view, SETTINGS["gc_cmap"], SETTINGS["gc_opacity"]).show()'''),
        md("""\
## Is the map right?
The pointing game (Grad-CAM paper, section 6.1) and the randomisation cascade (Adebayo et al. 2018), on this model
when it is a Shapes model (`gc_check_own`), else on the embedded demo ResNet-20, on the first 200 held-out Shapes
images as on the page (a few seconds, so `SMALL` does not shrink it). `cam.method_checks` runs both checks for
every method."""),
        code('''\
from resnet_core.plots.cam import cascade_figure, pointing_figure
from resnet_core.weights.demo import DEMO_CHECK_MODEL, load_demo_model

if SETTINGS["gc_check_own"] and names == list(SHAPES_CLASSES):
    checked = model
else:
    checked = load_demo_model(DEMO_CHECK_MODEL)
report = cam.localisation_check(checked.cpu(), colormap=SETTINGS["gc_cmap"], opacity=SETTINGS["gc_opacity"])
pointing = report.pointing
print(f"Pointing game {pointing.hit_rate:.1%} (chance {pointing.chance:.1%}) on {report.sample_text()}; "
      f"accuracy on these images {pointing.accuracy:.1%}")
pointing_figure(pointing.summary()).show()
cascade_figure(report.cascade).show()'''),
        summary_cell('''{
    "top5": [str(c) for c in table["class"]],
    "probabilities": [float(p) for p in table["probability"]],
    "target": int(target),
    "class_name": explanation.class_name,
    "layer": explanation.layer,
    "score": float(explanation.score),
    "heatmap_shape": list(explanation.heatmap.shape),
    "ranking": None if comparison is None else [str(m) for m in comparison.table["label"]],
    "trust_verdict": None if trust is None else cam.trust_verdict(trust),
    "trust": None if trust is None else [[str(r.method), str(r.metric), None if r.value != r.value else float(r.value)]
                                         for r in trust.itertuples()],
    "pointing": {"hit_rate": float(pointing.hit_rate), "chance": float(pointing.chance),
                 "accuracy": float(pointing.accuracy)},
}'''),
    ]
