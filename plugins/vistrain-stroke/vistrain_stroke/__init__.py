"""Random stroke-width change (thicker or thinner strokes) for vistrain."""
