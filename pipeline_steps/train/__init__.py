"""Training: the shared loop, the synthetic-world teachers, SDS-CLIP and CLIP-TD."""
