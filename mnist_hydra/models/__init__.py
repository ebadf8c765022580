"""Networks and optimizers, each a registered builder with its typed schema."""
