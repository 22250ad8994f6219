"""The adversarial patch (Brown, Mané, Roy, Abadi & Gilmer 2017, "Adversarial Patch", arXiv:1712.09665): a visible,
printable sticker that makes a frozen classifier answer one target class wherever the sticker sits.

`patch.py` is the engine (training by expectation over transformation, placing, the held-out evaluation against
noise and grey controls, printing; no Streamlit); `view.py` holds the page's Streamlit helpers. The page is
pages/patch.py, the command commands/patch.py, the shipped patches data/patch/ (made by scripts/make_patch.py).
"""
