"""Training the two model families with PyTorch (imported only by `latentdmx train`).

- `nat`     Noise As Targets: an MLP from N(0, I) noise to points (x, y, r, g, b, w) drawn
            from a picture.
- `iae`     the inverted autoencoder: message -> glyph picture -> noisy channel -> message.
- `export`  an `nn.Sequential` generator to ``model.safetensors`` + ``model.json``, which
            `pi_app.runtime` runs with NumPy alone.
- `quality` the measured figures and pictures of a trained model; `card` writes its README.
- `common`  seeding, the steps/minutes budget and checkpoints shared by both.

The daemon never imports this package: `pi_app.runtime` is its NumPy-only counterpart.
"""
