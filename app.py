"""ctmodels demo: chest CT lesions, severity and breath-hold quality (research use, not diagnosis)."""

import streamlit as st

from app_pages.common import arrive_on
from ctmodels.io import quiet_readers

st.set_page_config(page_title="ctmodels - chest CT", page_icon=":lungs:", layout="wide")
quiet_readers()  # pydicom's and Pillow's own warnings: the pages say what is wrong with a file

pages = [
    st.Page("app_pages/lesions.py", title="Lesions", icon=":material/image_search:", default=True),
    st.Page("app_pages/severity.py", title="Study severity", icon=":material/monitoring:"),
    st.Page("app_pages/cohort.py", title="Cohort classes", icon=":material/stacked_line_chart:"),
    st.Page("app_pages/quality.py", title="Breath-hold QA", icon=":material/air:"),
    st.Page("app_pages/models.py", title="Models", icon=":material/info:"),
]
page = st.navigation(pages)
arrive_on(page.url_path)
# before the page runs: a page that stops early (an error, nothing uploaded) must not take the notice with it
st.sidebar.caption("Research use only - not for diagnosis. Uploads stay in memory or a private "
                   "temporary folder that is deleted after reading. The pages share your latest upload "
                   "until you replace it, press Forget or close the tab.")
page.run()
