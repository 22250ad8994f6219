"""Defenses and detection: preprocessing defenses with adaptive attackers, and detectors of adversarial images.

defenses: the defenses and their evaluation; detection: the SVM on penultimate features and feature
squeezing; demo: the page's three cases and the spot-the-adversarial grid; view: the page's pieces (Streamlit).
Page: pages/defenses.py; commands: cli.py defend, cli.py detect.
"""
