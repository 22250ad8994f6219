"""Universal perturbations (Moosavi-Dezfooli et al.): one small v that fools a model on most images.

universal: the engine and its one evaluation; view: the page's pieces (Streamlit). Page: pages/universal.py;
command: cli.py universal; shipped v: data/universal/ (scripts/make_universal.py).
"""
