"""Streamlit glue shared by the pages: cached loaders, pickers, the live view and its plotly figures.

Pages stay thin (widgets -> parameters -> these calls -> rendering). Nothing here takes a gradient: the attacks do,
and the UI only calls `model.probabilities` and `models.gradcam.grad_cam`.
"""
