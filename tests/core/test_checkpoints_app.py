"""A foreign checkpoint in the app (real Streamlit AppTest): stored through the upload path, opened by its link,
its architecture set in the sidebar and what was renamed or inferred shown beside the model."""

from __future__ import annotations

import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

import resnet_core
from resnet_core.weights.checkpoints import save_uploaded_checkpoint
from tests.conftest import APP_SCRIPT


def test_an_uploaded_cifar_repository_checkpoint_shows_its_architecture_and_notes(tmp_path):
    # kuangliu/pytorch-cifar's keys (shortcut.0/1, linear) for a slim ResNet-18 with a CIFAR stem, as it saves them.
    state = resnet_core.build("resnet18_cifar", width=8, seed=0).state_dict()
    state = {k.replace("downsample.", "shortcut.").replace("fc.", "linear."): v for k, v in state.items()}
    path = tmp_path / "ckpt.pth"
    torch.save({"net": state, "acc": 94.2, "epoch": 180}, path)
    stored = save_uploaded_checkpoint(path.read_bytes(), path.name)
    assert stored.suffix == ".pth"

    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=180)
    at.query_params["weights"] = f"ckpt:{stored}"
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["sb_arch"] == "resnet18_cifar"
    infos = [info.value for info in at.sidebar.info]
    assert any("Architecture from the checkpoint: **ResNet-18 (CIFAR stem), width 8, shortcut B, 10 classes**" in i
               for i in infos), infos
    captions = " ".join(caption.value for caption in at.sidebar.caption)
    for note in ("read the tensors under 'net'", "projection shortcuts 'shortcut.0/1' read as 'downsample.0/1'",
                 "classifier 'linear' read as 'fc'", "CIFAR stem (3x3 convolution, no max-pool): 32 px input"):
        assert note in captions, captions
