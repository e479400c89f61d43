"""Elastic distortion for vistrain."""
