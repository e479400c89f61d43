"""Mean Teacher for vistrain."""
