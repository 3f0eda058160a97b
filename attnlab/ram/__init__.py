"""The recurrent attention model (RAM) of Mnih et al. 2014, "Recurrent Models of Visual
Attention": a second model family of attnlab, trained by the same runner conventions.

- `glimpse`: the multi-resolution glimpse sensor (pure functions).
- `model`: glimpse network, recurrent core, Gaussian location policy, baseline and classifier
  (Flax linen, per example, `jax.vmap`-ed over the batch), and the hybrid loss.
- `config`: `default_config()` and `validate()` of the family (`family = "ram"`).
- `data`: digits on a canvas (the `attnlab_digits_canvas` TFDS builder) or MNIST on a cluttered
  60x60 canvas, held in memory; batches are a pure function of the step.
- `train`: `train_and_evaluate(config, workdir)`, which `python -m attnlab train` calls when
  `config.family == "ram"`.
"""
