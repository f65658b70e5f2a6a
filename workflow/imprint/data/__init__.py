"""Stage 1, data: datasets, downloads, class selections, backbones, the PIL-exact resize, extraction."""
