"""Students: loading, fine-tuning and generation."""
