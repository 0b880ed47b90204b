# AdaBound (Luo et al. 2019, "Adaptive Gradient Methods with Dynamic Bound of Learning Rate"), as
# the authors' reference implementation (github.com/Luolc/AdaBound, adabound.py) computes it: Adam's
# per-entry step size, clamped into bounds that converge to final_lr (scaled with the schedule's
# lr / base_lr): final_lr * (1 - 1 / (gamma t + 1)) <= step <= final_lr * (1 + 1 / (gamma t)).
def adabound(w, g, m, v, lr=1e-3, step, beta1=0.9, beta2=0.999, eps=1e-8, final_lr=0.1, gamma=1e-3, base_lr=1e-3):
  m = interp(g, m, beta1)
  v = interp(g * g, v, beta2)
  step_size = lr * sqrt(1 - beta2 ** step) / (1 - beta1 ** step)
  bound = final_lr * lr / base_lr
  lower = bound * (1 - 1 / (gamma * step + 1))
  upper = bound * (1 + 1 / (gamma * step))
  update = clamp(step_size / (sqrt(v) + eps), lower, upper) * m
  return update, m, v
