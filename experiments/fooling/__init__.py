"""Fooling images: noise turned into a confident class by gradients or by evolution, and class visualisation.

synthesis: the engine; view: the page's pieces (Streamlit). Page: pages/fooling_images.py; command: cli.py
synthesize.
"""
