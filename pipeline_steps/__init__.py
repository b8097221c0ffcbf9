"""pipeline_steps: every computation of the SDS-CLIP / CLIP-TD pipeline (rules only call these)."""

__version__ = "0.1.0"
