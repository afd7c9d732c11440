"""First and second `sample(64)` call of the CLI's digits28 Glow after a few training steps, per policy."""
import sys, time, json
import keras, numpy as np, tensorflow as tf
from tfp_glow import recipes
from tfp_glow.data import splits

policy = sys.argv[1]; DATA = sys.argv[2] if len(sys.argv) > 2 else "digits28"
keras.mixed_precision.set_global_policy("float32" if policy == "none" else policy)
keras.utils.set_random_seed(0)
x, info = splits.load_split(DATA, "train")
model, recipe = recipes.build_model(DATA, info=info)
ds = tf.data.Dataset.from_tensor_slices(np.asarray(x)[:256]).batch(64, drop_remainder=True)
t = time.time(); model.fit(ds, epochs=1, verbose=0); fit_s = time.time() - t
out = {"data": DATA, "policy": policy, "fit_4_steps_s": round(fit_s, 2)}
for i in range(3):
    t = time.time(); s = model.sample(64, temperature=0.7, seed=i).numpy(); out[f"sample_call{i+1}_s"] = round(time.time() - t, 2)
out["finite"] = bool(np.isfinite(s).all())
print(json.dumps(out))
