"""Stage 1: videos -> frames, clip plans, actor boxes and crops, backbone clip features."""
