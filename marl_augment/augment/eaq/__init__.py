"""EAQ: Episodes Augmentation guided by Q-total loss (Oh et al. 2024).

``features`` turns episodes into (B, F, T) tensors and back, ``denoiser`` is the Conv1D temporal
U-Net, ``diffusion`` the noise schedule and samplers (kept apart from the network), and
``augmenter`` the training and sampling loops, written out openly.
"""
