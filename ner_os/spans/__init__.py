"""spans stage."""
