"""The susceptibility study (Robinson & Graham): every image attacked toward every class, stored and summarised.

sweep: the resumable sweep; store: its SQLite database; ray_engine: the sweep on Ray actors; susceptibility:
rates, rankings and the success rule; examples: one pair recomputed for the page; view: the page's pieces
(Streamlit). Page: pages/susceptibility.py; commands: cli.py sweep, cli.py report.
"""
