"""The seed documents' experiments as plain functions: fooling images, transfer, robustness (no Streamlit here).

synthesis: fooling images from noise (gradient, evolution) and class visualisation; transfer: attack one model or
an ensemble, evaluate every other; robustness: everyday transforms of adversarial images, and EOT; wrappers: the
nn.Modules (MeanLogitEnsemble, input diversity, random transforms) that let the registered attacks run unchanged.
"""
