"""TensorBoard output for vistrain runs."""
