"""The regularizers' maths as pure tensor functions, testable without a Trainer (one module per term)."""
