"""Patient bags, datasets, the KL-to-text loss, the training loop with checkpoints and resume, patient embeddings."""
