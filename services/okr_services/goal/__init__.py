"""goal service: cycles, objectives, key results and initiatives."""
