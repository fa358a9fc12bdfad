"""The default models: the one place the settings, the CLI, the app and the demo start from.

Kept free of imports so that the command line can name them in its help without loading NumPy.
"""

DEFAULT_MODELS = {"image": "ViT-B-32/laion2b_s34b_b79k", "audio": "laion/clap-htsat-unfused"}
"""The image and video model (open_clip) and the audio model (CLAP)."""

FAMILY = {"image": "open_clip", "video": "open_clip", "audio": "clap"}
"""The registered embedder a bare model string names, by the modality it is chosen for."""
