"""The Attack Lab: one image, one model, one target, attacked step by step while the page draws it.

steps: the run's Step stream (through attacks.runner.drive) and what each step records; record: a run's
numbers for drawing, Stop, replay and the JSON; view: the live view (Streamlit). Page: pages/attack_lab.py;
command: cli.py attack.
"""
