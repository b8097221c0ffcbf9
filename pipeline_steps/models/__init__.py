"""Model builders: CLIP (open_clip), the diffusion teacher (diffusers), the VL student."""
