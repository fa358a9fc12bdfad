"""Pure compute for Curator: media decoding, embedders, FAISS index, clustering and the 2-D map.

NumPy in, NumPy out. Nothing here imports `curator` or `ui`, opens SQLite or touches Qt.
"""
