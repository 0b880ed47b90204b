# Yogi (Zaheer et al. 2018, "Adaptive Methods for Nonconvex Optimization", Algorithm 2): Adam's
# second moment moved additively, v = v - (1 - beta2) * sign(v - g^2) * g^2, without bias
# correction; v starts at 1e-6 as in the paper's experiments (initial_accumulator_value).
def yogi(w, g, m, v: state = 1e-6, lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-3):
  m = interp(g, m, beta1)
  g2 = g * g
  v = v - (1 - beta2) * sign(v - g2) * g2
  update = lr * m / (sqrt(v) + eps)
  return update, m, v
