"""An example vistrain plugin."""
