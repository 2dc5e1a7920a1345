"""Reusable widgets of the window: banners, thumbnail grids, matplotlib charts, the runs list."""
