"""Models: each model card, the device in use, versions."""

import platform

import streamlit as st

from ctmodels import __version__, registry
from ctmodels.errors import CTModelsError
from ctmodels.hub import resolve_model_dir

st.title("Models")
try:
    import torch

    from app_pages.common import lesion_model

    dev = "CUDA: " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    try:
        dev += f" (lesion model runs in {lesion_model().backend})"
    except CTModelsError:
        pass  # the card below says what is wrong with the weights
    st.write(f"**Device**: {dev} - ctmodels {__version__}, torch {torch.__version__}, "
             f"Python {platform.python_version()}")
except Exception as exc:  # torch missing or broken: still show the cards
    st.write(f"ctmodels {__version__} (torch unavailable: {type(exc).__name__})")

for entry in registry.all_models():
    with st.expander(f"{entry.name} - {entry.task}", expanded=True):
        st.caption(f"Hub: {entry.repo_id} @ {entry.revision} - licence: {entry.licence}")
        try:
            folder = resolve_model_dir(entry.name)
            card = folder / "README.md"
            text = card.read_text() if card.exists() else entry.description
            if text.startswith("---"):
                text = text.split("---", 2)[2]
            st.markdown(text)
        except CTModelsError as exc:
            st.error(str(exc))
