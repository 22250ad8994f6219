"""Three explainers a class can follow in five minutes each, as plain functions (no Streamlit here).

linear: seed 001's 10-d logistic regression and the same argument at image scale, checked on a real network;
boundary: a two-moons network whose decision boundary a point is pushed across, iterated vs one straight step;
digits: an 8x8-digits CNN, fooling images grown from noise, and adversarial training with PGD.
"""
