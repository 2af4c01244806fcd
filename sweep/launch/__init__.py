"""Where and how runs train: launchers, GPU packing and placement, slots, MPS, the sweep's progress bar.

The ladder decides what runs (grid, shapes, hparams, plan); this package decides where each run trains."""
