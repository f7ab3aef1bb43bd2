"""The image-source picker (a sample photo, an upload, or a Shapes image), written once for every page.

Each page keeps its own widget keys and option values (links and tests address them), and says what happens
while no usable upload is there: fall back to a sample photo, or stop the page with a sentence.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import streamlit as st
from PIL import Image

from explorer_ui.page_state import PERSIST
from resnet_core.card import card_of, source_mismatch
from resnet_core.data import SHAPES_CLASSES
from resnet_core.images import FORMATS, ImageError, decode_image, sample_images, to_pil

KINDS = ("photo", "upload", "shapes")
UPLOAD_TYPES = [f.lower() for f in FORMATS if f != "MPO"] + ["jpg", "tif"]
FORMAT_WORDS = "PNG, JPEG, WebP, BMP, GIF or TIFF"


@dataclass(frozen=True)
class ImageSourceKeys:
    """Session-state keys of the picker's widgets on one page."""

    source: str
    photo: str
    shape: str
    upload: str


@dataclass(frozen=True)
class PickedImage:
    """The chosen image, a cache key naming it (sample name, upload digest or Shapes index) and a label."""

    image: Image.Image
    key: str
    label: str
    shape_class: str | None = None  # the Shapes class drawn, for a Shapes image
    source: str = ""  # the picker's value in effect (a value of the page's ``sources``)


def _upload(keys: ImageSourceKeys, fallback_photo: str | None) -> tuple[Image.Image, str, str] | None:
    """The decoded upload, or None (after saying why) when there is none or it cannot be used."""
    upload = st.file_uploader(f"An image ({FORMAT_WORDS})", type=UPLOAD_TYPES, key=keys.upload,
                              help="Decoded safely: EXIF rotation, transparency on white, 16-bit and CMYK "
                                   "converted, a 40-megapixel limit. Up to "
                                   f"{st.get_option('server.maxUploadSize')} MB per file.")
    instead = (f" Showing the sample photo '{fallback_photo}' until another file is uploaded."
               if fallback_photo else "")
    if upload is None:
        st.info(f"Upload an image; until then the sample photo '{fallback_photo}' is shown." if fallback_photo
                else f"Upload an image above ({FORMAT_WORDS}), or pick a sample photo.")
        return None
    data = upload.getvalue()
    try:
        return decode_image(data), "upload:" + hashlib.sha256(data).hexdigest(), upload.name
    except ImageError as error:
        st.error(f"{error}{instead}")
        return None


def _picked(picked_key: str) -> None:
    st.session_state[picked_key] = True


def pick_image(keys: ImageSourceKeys, sources: Mapping[str, str], *, label: str = "Image",
               labels: Mapping[str, str] | None = None, photo_label: str = "Photo",
               shapes: Callable[[], Any], shapes_title: str, shapes_key: str = "shapes",
               fallback_photo: str | None = "chelsea", default: str | None = None,
               chosen: bool = False) -> PickedImage:
    """Render the picker and return the chosen image.

    ``sources`` maps each option value of the segmented control to its kind ("photo", "upload" or "shapes"),
    in display order; ``labels`` (value -> shown text) when the values are not themselves the text.
    ``shapes()`` returns the Shapes images to choose from (``.images``, ``.labels``; cached by the page);
    ``shapes_title`` labels the index box and ``shapes_key`` prefixes the Shapes image's cache key. While no
    usable upload is there, the page shows ``fallback_photo``, or stops when that is None.

    ``default`` (a value of ``sources``; the first when None) is the source shown until the user picks one: when
    the page's default changes (another model), an unpicked source follows it. ``chosen``: the source was chosen
    already (a link's), so no default replaces it.
    """
    values = list(sources)
    default = default if default in values else values[0]
    picked_key, default_key = f"_{keys.source}_picked", f"_{keys.source}_default"
    if chosen:
        st.session_state[picked_key] = True
    # Defaults go through session state (a link may already have set them, see url_params.take_settings): a
    # widget given both a default and a session-state value warns and reruns a browser's first view.
    current, previous = st.session_state.get(keys.source), st.session_state.get(default_key)
    # A source still showing the previous default (nobody picked one) follows the new default.
    if current not in values or (not st.session_state.get(picked_key) and current == previous != default):
        st.session_state[keys.source] = default
    st.session_state[default_key] = default
    value = st.segmented_control(label, values, key=keys.source, format_func=labels.get if labels else str,
                                 on_change=_picked, args=(picked_key,), persist_state=PERSIST) or default
    kind = sources[value]
    photos = sample_images()
    if kind == "shapes":
        pool = shapes()
        count = len(pool.labels)
        if not 0 <= int(st.session_state.get(keys.shape, 0)) < count:
            st.session_state[keys.shape] = 0
        index = int(st.number_input(f"{shapes_title} (0-{count - 1})", 0, count - 1, key=keys.shape,
                                    persist_state=PERSIST))
        name = SHAPES_CLASSES[int(pool.labels[index])]
        return PickedImage(to_pil(pool.images, index), f"{shapes_key}:{index}", f"Shapes image {index} (a {name})",
                           name, value)
    if kind == "upload":
        picked = _upload(keys, fallback_photo)
        if picked is not None:
            return PickedImage(*picked, source=value)
        if fallback_photo is None:
            st.stop()
        return PickedImage(photos[fallback_photo], f"photo:{fallback_photo}", f"sample photo '{fallback_photo}'",
                           source=value)
    if st.session_state.get(keys.photo) not in photos:
        st.session_state[keys.photo] = next(iter(photos))
    name = st.selectbox(photo_label, list(photos), key=keys.photo, persist_state=PERSIST)
    return PickedImage(photos[name], f"photo:{name}", f"sample photo '{name}'", source=value)


def _switch_source(keys: ImageSourceKeys, value: str) -> None:
    st.session_state[keys.source] = value
    st.session_state[f"_{keys.source}_picked"] = True  # a choice, as if the user had clicked it


def domain_notice(model: Any, picked: PickedImage, keys: ImageSourceKeys, sources: Mapping[str, str]) -> None:
    """Above the map: one sentence when the image source does not suit what the model was trained on (its
    card's ``trained_on``, never the image's content), and the one click that fixes it where the app has one."""
    shown = picked.key.split(":", 1)[0]  # what is shown: an unfilled upload shows its fallback photo
    mismatch = source_mismatch(card_of(model).trained_on, "shapes" if shown.startswith("shapes") else shown)
    if mismatch is None:
        return
    st.warning(mismatch.sentence, icon=":material/warning:")
    fix = next((value for value, kind in sources.items() if kind == mismatch.fix_source), None)
    if fix is not None:
        st.button(mismatch.fix_label, key=f"{keys.source}_fix", on_click=_switch_source, args=(keys, fix),
                  icon=":material/swap_horiz:")
