"""Training: GAN losses, the joint train step, checkpoints, summaries, the loop."""
