"""Models: each model card, the device in use, versions."""

import platform

import streamlit as st

from ctmodels import __version__, registry
from ctmodels.errors import CTModelsError
from ctmodels.hub import BUNDLED, COMMIT, resolve_model_dir, weights_root

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
        hub = (f"Hub: {entry.repo_id} @ {entry.revision[:12]}" if COMMIT.fullmatch(entry.revision) else
               f"Hub: {entry.repo_id}, not pushed yet (revision {entry.revision} until a push records its commit)")
        try:
            folder = resolve_model_dir(entry.name)
            parent = folder.parent.resolve()
            where = ("bundled" if parent == BUNDLED.resolve() else "from $CTMODELS_WEIGHTS_DIR"
                     if parent == weights_root().resolve() else "from the Hugging Face cache")
            st.caption(f"Weights {where}, every file checked against its recorded SHA-256 - {hub} - licence: "
                       f"{entry.licence}")
            card = folder / "README.md"
            text = card.read_text() if card.exists() else entry.description
            if text.startswith("---"):
                text = text.split("---", 2)[2]
            st.markdown(text)
        except CTModelsError as exc:
            st.caption(f"{hub} - licence: {entry.licence}")
            st.error(str(exc))
