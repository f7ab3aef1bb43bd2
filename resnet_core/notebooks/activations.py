"""The Activations page as a notebook: every tap point of the chosen net on a batch led by one image, the
feature maps of one layer, and statistics and histograms over depth beside its twin."""

from __future__ import annotations

from typing import Any

from nbformat import NotebookNode

from ..page_specs import ACTIVATIONS
from ._cells import code, md, model_cell, options_cell, summary_cell

TITLE = "Activations"
SPEC = ACTIVATIONS


def cells(settings: dict[str, Any]) -> list[NotebookNode]:
    return [
        md("""\
## What this view shows
One forward pass of a batch led by the image you pick (then the sample photos and Shapes images), recorded at
every tap point of every block: the feature maps of one layer, and how mean, spread and the share of switched-off
units evolve with depth in this net and its twin (the same layers with shortcuts flipped, at initialisation when
the net is trained). Batch norm uses the batch's statistics (`batch`) or its stored running ones (`running`).
In a residual net each block *adds* F(x) to its input; a plain net has to re-create its signal in every block.
`SMALL` caps the batch at 2 images."""),
        options_cell(),
        model_cell(),
        code('''\
from resnet_core.data import make_shapes
from resnet_core.images import decode_image, sample_images, to_pil
from resnet_core.probes import image_batch
from resnet_core.weights import preprocessing_for

# The page's image pool: the four sample photos, then 24 Shapes images (64 px, seed 0).
pool = make_shapes(24, image_size=64, seed=0)
companions = ([(f"photo:{name}", image) for name, image in sample_images().items()]
              + [(f"shapes:{i}", to_pil(pool.images, i)) for i in range(len(pool.labels))])
source = SETTINGS["act_source"]
if source == "upload" and SETTINGS["act_upload"]:
    image, image_key = decode_image(open(SETTINGS["act_upload"], "rb").read()), "upload"
elif source == "shapes":
    image, image_key = to_pil(pool.images, SETTINGS["act_shape"]), f"shapes:{SETTINGS['act_shape']}"
else:  # a sample photo (the page shows 'chelsea' while no upload is there)
    photo = SETTINGS["act_photo"] if source == "photo" else "chelsea"
    image, image_key = sample_images()[photo], f"photo:{photo}"
batch = min(SETTINGS["act_batch"], 2) if SMALL else SETTINGS["act_batch"]
prep = preprocessing_for(model)
x = image_batch(image, prep, batch, [img for key, img in companions if key != image_key])
print(f"A batch of {batch} ({image_key} first), {prep.crop}x{prep.crop} px: {prep.describe()}")
thumbnail = image.copy()
thumbnail.thumbnail((160, 160))  # a small copy keeps the notebook file small
display(thumbnail)'''),
        md("## Every tap point, and the feature maps of one layer"),
        code('''\
from resnet_core.plots.instruments import depth_strip_figure, feature_map_figure
from resnet_core.probes import activation_profile, bn_train_flag

bn = SETTINGS["act_bn"]
rec = activation_profile(model, x, "taps", keep="maps", max_channels=16, max_side=32, train=bn_train_flag(bn))
strip, maps = rec.stats(), rec.maps
layers = list(strip["layer"])
layer = SETTINGS["act_layer"]
if layer not in layers:  # empty or not a layer of this net: the page's default, the first block's output
    layer = next((n for n in layers if n.endswith("tap_out")), layers[0])
row = strip.set_index("layer").loc[layer]
print(f"Feature maps at {row['label']} ({row['shape']})")
depth_strip_figure(strip, layer).show()
if layer in maps:
    feature_map_figure(maps[layer]).show()'''),
        md("""\
## Statistics across depth: this net and its twin
One point per block output. Dead units (exact zeros after the ReLU) show how much of each layer is switched off.
The histograms (the "colorful dimension"): each column one block output, each row a fixed bin, colour the log10
share of values in the bin."""),
        code('''\
from resnet_core.plots.instruments import activation_depth_figure, histogram_heatmap
from resnet_core.probes import compare_activations, spread_summary

# A checkpoint holds one trained net: its twin is compared at initialisation (and labelled so).
trained = weights != "random"
twin_options = {**options, "residual": not options["residual"]}
twin = load_model(arch, twin_options, "random").to(DEVICE)
labels = (display_name(arch, options["residual"]) + (" (trained)" if trained else ""),
          display_name(arch, twin_options["residual"]) + (" (at initialisation)" if trained else ""))
stats, hists = compare_activations(model, twin, x, "blocks", labels=labels, train=bn_train_flag(bn))
spread = spread_summary(stats)
activation_depth_figure(stats).show()
for net in dict.fromkeys(stats["net"]):
    histogram_heatmap(hists[hists["net"] == net], title=net).show()
spread'''),
        summary_cell('''{
    "layer": layer,
    "layer_label": str(row["label"]),
    "shape": str(row["shape"]),
    "layers": len(layers),
    "batch": int(x.shape[0]),
    "channels_shown": int(maps[layer].maps.shape[1]) if layer in maps else 0,
    "spread": [{"net": r.net, "first_std": float(r.first_std), "last_std": float(r.last_std), "trend": r.trend}
               for r in spread.itertuples()],
}'''),
    ]
