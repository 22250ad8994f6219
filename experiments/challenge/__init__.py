"""The classroom challenge: a teacher fixes an image, a model, a target and a budget; every student attacks it in
the Attack Lab; the server scores each saved 8-bit image and ranks the class on one board.

store: the SQLite file (challenges, nicknames, entries), no torch; challenge: scoring a submitted PNG with the
plain model; view: the teacher's page and the Lab's challenge mode (Streamlit).
"""
