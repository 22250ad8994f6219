"""Transfer: attack one model (or an ensemble), save the 8-bit image, ask every other model.

transfer: the engine; report: the transfer and robustness matrices over the labelled samples (python -m
experiments.transfer.report); view: the page's pieces (Streamlit). Page: pages/transfer.py; command: cli.py transfer.
"""
