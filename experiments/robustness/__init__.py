"""Robustness: what everyday transformations (mirror, shift, JPEG...) do to adversarial images, and EOT.

robustness: the engine; view: the page's pieces (Streamlit). Page: pages/robustness.py; command: cli.py
robustness.
"""
