"""Plotting: one style (colours, captions, saving), board drawing, and animation writers."""
