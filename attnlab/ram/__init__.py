"""The recurrent attention model (RAM) of Mnih et al. 2014, "Recurrent Models of Visual
Attention": a second model family of attnlab (`family = "ram"`), trained by the same runner.

- `glimpse`: the multi-resolution glimpse sensor (pure functions).
- `model`: glimpse network, recurrent core, Gaussian location policy, baseline and classifier
  (Flax linen, per example, `jax.vmap`-ed over the batch), and the hybrid loss.
- `config`: `default_config()` and `validate()` of the family (`family = "ram"`).
- `data`: digits on a canvas (the `attnlab_digits_canvas` TFDS builder) or MNIST on a cluttered
  60x60 canvas, held in memory; batches are a pure function of the step.
- `train`: the family itself (`RamFamily`: loss, evaluation, glimpse pictures), which
  `attnlab.runner.train_and_evaluate` drives for a config with `family = "ram"`.
"""
