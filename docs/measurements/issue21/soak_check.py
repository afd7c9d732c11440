"""The soak's end state: weights, samples at T = 1.0 and 0.7 (float32 model, as `tfp-glow sample` loads it)."""
import json, sys
import numpy as np
from tfp_glow import runs
from tfp_glow.plots import grids
run = sys.argv[1]
m = runs.load_run(run)
weights = all(bool(np.isfinite(v.numpy()).all()) for v in m.trainable_variables)
out = {"weights_finite": weights, "trainable_values": int(sum(np.prod(v.shape) for v in m.trainable_variables))}
for t in (1.0, 0.7):
    x = m.sample(64, temperature=t, seed=0).numpy()
    out[f"finite_samples_T{t}"] = float(np.isfinite(x.reshape(64, -1)).all(axis=1).mean())
    grids.save_image_grid(f"{run}/soak_samples_t{t}.png", m.sample_images(64, t, seed=0).numpy(),
                          title=grids.sample_title(t, seed=0))
print(json.dumps(out))
