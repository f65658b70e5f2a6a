"""Stage 4, figures: one module per paper figure, the CD diagram, the shared style and the registry."""
